package awsfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Service Quotas speaks AWS JSON 1.1: POST / with X-Amz-Target:
// ServiceQuotasV20190624.<Operation>, a JSON body with the input members by
// name, a JSON answer, errors as {"__type": code, "Message": ..} with the
// status of the model's @httpError. Checked against service/servicequotas
// v1.43.11 (schema-serde: awsjson.New11 in api_client.go, the schemas
// package for member names and error statuses) and smithy-go's awsjson.
func init() {
	byTarget["ServiceQuotasV20190624"] = &service{
		id: "servicequotas", proto: protoJSON,
		ops: map[string]handler{
			"ListServiceQuotas":           sqListServiceQuotas,
			"ListAWSDefaultServiceQuotas": sqListAWSDefaultServiceQuotas,
			"StartQuotaUtilizationReport": sqStartQuotaUtilizationReport,
			"GetQuotaUtilizationReport":   sqGetQuotaUtilizationReport,
		},
	}
}

var sqBadToken = errf(400, "InvalidPaginationTokenException", "Invalid pagination token")

type sqInput struct {
	ServiceCode         string
	QuotaCode           string
	QuotaAppliedAtLevel string
	ReportId            string
	NextToken           string
	MaxResults          *int
}

func (c *call) sqInput() (sqInput, *apiError) {
	var in sqInput
	if len(c.body) > 0 {
		if err := json.Unmarshal(c.body, &in); err != nil {
			return in, errf(400, "SerializationException", "could not read the request body: %v", err)
		}
	}
	return in, nil
}

func (c *call) sqPageSize(in sqInput) int {
	if in.MaxResults != nil {
		return c.srv.pageSize(*in.MaxResults, true)
	}
	return c.srv.pageSize(0, false)
}

type sqQuota struct {
	ServiceCode         string
	ServiceName         string
	QuotaArn            string
	QuotaCode           string
	QuotaName           string
	Value               float64
	Unit                string
	Adjustable          bool
	GlobalQuota         bool
	QuotaAppliedAtLevel string `json:",omitempty"`
}

type sqListOutput struct {
	NextToken string `json:",omitempty"`
	Quotas    []sqQuota
}

// knownServices are the service codes Service Quotas answers for even when
// the account has no quota of theirs.
var knownServices = []string{"ec2", "vpc", "ebs", "elasticloadbalancing", "autoscaling", "iam", "lambda", "eks", "s3"}

func sqList(c *call, applied bool) (any, *apiError) {
	in, aerr := c.sqInput()
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	var list []*Quota
	known := slices.Contains(knownServices, in.ServiceCode)
	for _, q := range a.quotas {
		if q.ServiceCode != in.ServiceCode {
			continue
		}
		known = true
		if (!applied || q.Applied) && (in.QuotaCode == "" || in.QuotaCode == q.QuotaCode) {
			list = append(list, q)
		}
	}
	if !known {
		return nil, errf(404, "NoSuchResourceException", "The request failed because the specified service does not exist.")
	}
	key := func(q *Quota) string { return q.QuotaCode }
	page, next, aerr := paginate(byKey(list, key), key, in.NextToken, c.sqPageSize(in), sqBadToken)
	if aerr != nil {
		return nil, aerr
	}
	out := sqListOutput{NextToken: next, Quotas: []sqQuota{}}
	for _, q := range page {
		v := sqQuota{
			ServiceCode: q.ServiceCode, ServiceName: q.ServiceName, QuotaCode: q.QuotaCode, QuotaName: q.QuotaName,
			QuotaArn: a.arn("servicequotas", q.ServiceCode+"/"+q.QuotaCode),
			Value:    q.DefaultValue, Unit: q.Unit, Adjustable: q.Adjustable, GlobalQuota: q.GlobalQuota,
		}
		if applied {
			v.Value, v.QuotaAppliedAtLevel = q.Value, "ACCOUNT"
		}
		out.Quotas = append(out.Quotas, v)
	}
	return out, nil
}

func sqListServiceQuotas(c *call) (any, *apiError)           { return sqList(c, true) }
func sqListAWSDefaultServiceQuotas(c *call) (any, *apiError) { return sqList(c, false) }

// report is a quota utilization report: the quotas with a usage, frozen when
// the report was started, most utilized first.
type report struct {
	id      string
	started time.Time
	rows    []sqUtilization
}

type sqUtilization struct {
	QuotaCode    string
	ServiceCode  string
	QuotaName    string
	Namespace    string
	Utilization  float64
	DefaultValue float64
	AppliedValue float64
	ServiceName  string
	Adjustable   bool
}

func sqStartQuotaUtilizationReport(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	r := &report{id: uuidish(a.newID("rpt")), started: time.Now()}
	for _, k := range slices.Sorted(maps.Keys(a.quotas)) {
		q := a.quotas[k]
		limit := q.DefaultValue
		if q.Applied {
			limit = q.Value
		}
		if q.Usage == nil || limit <= 0 {
			continue
		}
		r.rows = append(r.rows, sqUtilization{
			QuotaCode: q.QuotaCode, ServiceCode: q.ServiceCode, QuotaName: q.QuotaName, Namespace: "AWS/Usage",
			Utilization: *q.Usage / limit * 100, DefaultValue: q.DefaultValue, AppliedValue: limit,
			ServiceName: q.ServiceName, Adjustable: q.Adjustable,
		})
	}
	slices.SortStableFunc(r.rows, func(x, y sqUtilization) int { return cmp.Compare(y.Utilization, x.Utilization) })
	a.reports[r.id] = r
	return map[string]string{
		"ReportId": r.id, "Status": "PENDING",
		"Message": "Quota utilization report generation started.",
	}, nil
}

type sqReportOutput struct {
	ReportId    string
	Status      string
	GeneratedAt float64         `json:",omitempty"`
	TotalCount  *int            `json:",omitempty"`
	Quotas      []sqUtilization `json:",omitempty"`
	NextToken   string          `json:",omitempty"`
}

func sqGetQuotaUtilizationReport(c *call) (any, *apiError) {
	in, aerr := c.sqInput()
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	r := a.reports[in.ReportId]
	if r == nil {
		return nil, errf(404, "NoSuchResourceException", "The quota utilization report %s does not exist.", in.ReportId)
	}
	out := sqReportOutput{ReportId: r.id, Status: "IN_PROGRESS"}
	ready := r.started.Add(a.timing.ReportDelay)
	if time.Now().Before(ready) {
		return out, nil
	}
	type row struct {
		key string
		u   sqUtilization
	}
	rows := make([]row, len(r.rows))
	for i, u := range r.rows {
		rows[i] = row{fmt.Sprintf("%08d", i), u}
	}
	page, next, aerr := paginate(rows, func(x row) string { return x.key }, in.NextToken, c.sqPageSize(in), sqBadToken)
	if aerr != nil {
		return nil, aerr
	}
	total := len(r.rows)
	out.Status, out.TotalCount, out.NextToken = "COMPLETED", &total, next
	out.GeneratedAt = float64(ready.UnixMilli()) / 1000
	out.Quotas = []sqUtilization{}
	for _, x := range page {
		out.Quotas = append(out.Quotas, x.u)
	}
	return out, nil
}
