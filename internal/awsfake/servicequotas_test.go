package awsfake

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
)

func listQuotas(t *testing.T, c *servicequotas.Client, service string, applied bool) (map[string]sqtypes.ServiceQuota, int) {
	t.Helper()
	out := map[string]sqtypes.ServiceQuota{}
	pages := 0
	add := func(qs []sqtypes.ServiceQuota) {
		pages++
		for _, q := range qs {
			if _, dup := out[aws.ToString(q.QuotaCode)]; dup {
				t.Errorf("%s listed twice", aws.ToString(q.QuotaCode))
			}
			out[aws.ToString(q.QuotaCode)] = q
		}
	}
	if applied {
		p := servicequotas.NewListServiceQuotasPaginator(c, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String(service)})
		for p.HasMorePages() {
			add(must[*servicequotas.ListServiceQuotasOutput](t)(p.NextPage(ctx)).Quotas)
		}
	} else {
		p := servicequotas.NewListAWSDefaultServiceQuotasPaginator(c, &servicequotas.ListAWSDefaultServiceQuotasInput{ServiceCode: aws.String(service)})
		for p.HasMorePages() {
			add(must[*servicequotas.ListAWSDefaultServiceQuotasOutput](t)(p.NextPage(ctx)).Quotas)
		}
	}
	return out, pages
}

func TestServiceQuotas(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	ec2Quotas, pages := listQuotas(t, c.sq, "ec2", true)
	if len(ec2Quotas) != 20 || pages != 4 {
		t.Errorf("%d ec2 quotas in %d pages, want 20 in 4", len(ec2Quotas), pages)
	}
	std := ec2Quotas["L-1216C47A"]
	if aws.ToFloat64(std.Value) != 768 || aws.ToString(std.QuotaName) != "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" ||
		std.GlobalQuota || aws.ToString(std.ServiceCode) != "ec2" || aws.ToString(std.QuotaArn) != "arn:aws:servicequotas:us-east-1:"+DefaultAccountID+":ec2/L-1216C47A" ||
		std.QuotaAppliedAtLevel != sqtypes.AppliedLevelEnumAccount {
		t.Errorf("standard vCPU quota: %+v", std)
	}
	defaults, _ := listQuotas(t, c.sq, "ec2", false)
	if aws.ToFloat64(defaults["L-1216C47A"].Value) != 5 {
		t.Errorf("default standard vCPUs %v", aws.ToFloat64(defaults["L-1216C47A"].Value))
	}
	for _, service := range []string{"vpc", "ebs", "elasticloadbalancing", "autoscaling"} {
		if qs, _ := listQuotas(t, c.sq, service, true); len(qs) == 0 {
			t.Errorf("no %s quotas", service)
		}
	}

	// Applied values move; quotas without one are only in the defaults.
	a.SetQuota("ec2", "L-1216C47A", "", 2048)
	a.ClearAppliedQuota("ebs", "L-09BD8365")
	a.SetDefaultQuota("ebs", "L-NEW00001", "Something new", 7)
	ebs, _ := listQuotas(t, c.sq, "ebs", true)
	ebsDefaults, _ := listQuotas(t, c.sq, "ebs", false)
	if _, ok := ebs["L-09BD8365"]; ok || ebsDefaults["L-09BD8365"].Value == nil || ebs["L-NEW00001"].Value != nil || aws.ToFloat64(ebsDefaults["L-NEW00001"].Value) != 7 {
		t.Errorf("applied %v / defaults %v", slices.Sorted(mapKeys(ebs)), slices.Sorted(mapKeys(ebsDefaults)))
	}
	one := must[*servicequotas.ListServiceQuotasOutput](t)(c.sq.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String("L-1216C47A")}))
	if len(one.Quotas) != 1 || aws.ToFloat64(one.Quotas[0].Value) != 2048 {
		t.Errorf("by quota code: %+v", one.Quotas)
	}
	_, err := c.sq.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("nosuchservice")})
	if apiCode(err) != "NoSuchResourceException" {
		t.Errorf("unknown service: %v", err)
	}
	var nsr *sqtypes.NoSuchResourceException
	if !errorsAs(err, &nsr) {
		t.Errorf("unknown service error is not the modeled NoSuchResourceException: %T", err)
	}
	_, err = c.sq.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("ec2"), NextToken: aws.String("%%")})
	if apiCode(err) != "InvalidPaginationTokenException" {
		t.Errorf("bad token: %v", err)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestQuotaUtilizationReport(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	a.SetTiming(Timing{ReportDelay: 100 * time.Millisecond})
	for i, code := range []string{"L-1216C47A", "L-DB2E81BA", "L-0263D0A3", "L-FB451C26"} {
		if err := a.SetQuotaUsage("ec2", code, float64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	start := must[*servicequotas.StartQuotaUtilizationReportOutput](t)(c.sq.StartQuotaUtilizationReport(ctx, &servicequotas.StartQuotaUtilizationReportInput{}))
	if start.Status != sqtypes.ReportStatusPending || aws.ToString(start.ReportId) == "" {
		t.Fatalf("start: %+v", start)
	}
	get := func(token *string) *servicequotas.GetQuotaUtilizationReportOutput {
		return must[*servicequotas.GetQuotaUtilizationReportOutput](t)(c.sq.GetQuotaUtilizationReport(ctx, &servicequotas.GetQuotaUtilizationReportInput{ReportId: start.ReportId, NextToken: token}))
	}
	if r := get(nil); r.Status != sqtypes.ReportStatusInProgress || len(r.Quotas) != 0 {
		t.Errorf("right after start: %s with %d quotas", r.Status, len(r.Quotas))
	}
	time.Sleep(120 * time.Millisecond)
	var rows []sqtypes.QuotaUtilizationInfo
	var token *string
	pages := 0
	for {
		r := get(token)
		if r.Status != sqtypes.ReportStatusCompleted || aws.ToInt32(r.TotalCount) != 6 || r.GeneratedAt == nil {
			t.Fatalf("report: %s total %d", r.Status, aws.ToInt32(r.TotalCount))
		}
		pages++
		rows = append(rows, r.Quotas...)
		if token = r.NextToken; token == nil {
			break
		}
	}
	// ec2 L-0263D0A3: 3 of 5 Elastic IPs is the most utilized; the two VPC
	// quotas of the catalogue (2 of 5) come next.
	if len(rows) != 6 || pages != 2 || aws.ToString(rows[0].QuotaCode) != "L-0263D0A3" || aws.ToFloat64(rows[0].Utilization) != 60 ||
		aws.ToFloat64(rows[0].AppliedValue) != 5 || aws.ToString(rows[0].Namespace) != "AWS/Usage" {
		t.Errorf("report rows (%d pages): %+v", pages, rows)
	}
	for i := 1; i < len(rows); i++ {
		if aws.ToFloat64(rows[i].Utilization) > aws.ToFloat64(rows[i-1].Utilization) {
			t.Errorf("report not sorted by utilization at %d", i)
		}
	}
	_, err := c.sq.GetQuotaUtilizationReport(ctx, &servicequotas.GetQuotaUtilizationReportInput{ReportId: aws.String("nope")})
	if apiCode(err) != "NoSuchResourceException" {
		t.Errorf("unknown report: %v", err)
	}
}
