package awsquota

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
)

const sourceLimits = "servicequotas:ListServiceQuotas"

// refreshLimits reads the applied value of every tracked quota, falling
// back to AWS's default for quotas without one (AWS leaves those out of
// ListServiceQuotas).
func (r *region) refreshLimits(ctx context.Context) error {
	res := result{limit: map[qkey]float64{}, names: map[qkey]string{}}
	sqNames := res.names
	for _, svc := range serviceCodes {
		want := tracked(svc)
		p := servicequotas.NewListServiceQuotasPaginator(r.cl.ServiceQuotas, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String(svc), MaxResults: aws.Int32(100)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				err = fmt.Errorf("listing the applied quotas of %s: %w", svc, err)
				r.store(sourceLimits, result{}, err, "all limits")
				return err
			}
			for _, q := range page.Quotas {
				code := aws.ToString(q.QuotaCode)
				if want[code] && q.Value != nil {
					k := qkey{svc, code}
					res.limit[k] = *q.Value
					sqNames[k] = aws.ToString(q.QuotaName)
				}
			}
		}
		missing := false
		for code := range want {
			if _, ok := res.limit[qkey{svc, code}]; !ok {
				missing = true
			}
		}
		if !missing {
			continue
		}
		dp := servicequotas.NewListAWSDefaultServiceQuotasPaginator(r.cl.ServiceQuotas, &servicequotas.ListAWSDefaultServiceQuotasInput{ServiceCode: aws.String(svc), MaxResults: aws.Int32(100)})
		for dp.HasMorePages() {
			page, err := dp.NextPage(ctx)
			if err != nil {
				err = fmt.Errorf("listing the default quotas of %s: %w", svc, err)
				r.store(sourceLimits, result{}, err, "all limits")
				return err
			}
			for _, q := range page.Quotas {
				k := qkey{svc, aws.ToString(q.QuotaCode)}
				if _, done := res.limit[k]; want[k.code] && !done && q.Value != nil {
					res.limit[k] = *q.Value
					sqNames[k] = aws.ToString(q.QuotaName)
				}
			}
		}
	}
	r.store(sourceLimits, res, nil, "all limits")
	return nil
}
