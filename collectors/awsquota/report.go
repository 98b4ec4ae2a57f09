package awsquota

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
)

const sourceReport = "servicequotas:GetQuotaUtilizationReport"

// refreshReport is the broad sweep: Service Quotas' quota utilization
// report covers every quota AWS tracks usage of, so the quotas this package
// does not compute itself still get a utilization ratio.
func (r *region) refreshReport(ctx context.Context) error {
	res, err := r.report(ctx)
	if err != nil {
		err = fmt.Errorf("%s: %w", sourceReport, err)
	}
	r.store(sourceReport, res, err, "utilization of the untracked quotas")
	return err
}

func (r *region) report(ctx context.Context) (result, error) {
	started, err := r.cl.ServiceQuotas.StartQuotaUtilizationReport(ctx, &servicequotas.StartQuotaUtilizationReportInput{})
	if err != nil {
		return result{}, fmt.Errorf("starting a quota utilization report: %w", err)
	}
	id := aws.ToString(started.ReportId)
	res := result{ratio: map[qkey]float64{}, names: map[qkey]string{}}
	var token *string
	for {
		out, err := r.cl.ServiceQuotas.GetQuotaUtilizationReport(ctx, &servicequotas.GetQuotaUtilizationReportInput{ReportId: &id, NextToken: token, MaxResults: aws.Int32(1000)})
		if err != nil {
			return result{}, fmt.Errorf("reading quota utilization report %s: %w", id, err)
		}
		switch out.Status {
		case sqtypes.ReportStatusCompleted:
		case sqtypes.ReportStatusFailed:
			return result{}, fmt.Errorf("quota utilization report %s failed: %s: %s", id, aws.ToString(out.ErrorCode), aws.ToString(out.ErrorMessage))
		default:
			// Still being generated: wait, within the refresh's deadline.
			select {
			case <-ctx.Done():
				return result{}, fmt.Errorf("waiting for quota utilization report %s: %w", id, ctx.Err())
			case <-time.After(r.reportPoll):
			}
			continue
		}
		for _, q := range out.Quotas {
			k := qkey{aws.ToString(q.ServiceCode), aws.ToString(q.QuotaCode)}
			if names[k] != "" || q.Utilization == nil {
				continue // computed from describe calls, fresher
			}
			res.ratio[k] = *q.Utilization / 100
			res.names[k] = aws.ToString(q.QuotaName)
		}
		if token = out.NextToken; aws.ToString(token) == "" {
			return res, nil
		}
	}
}
