package preflight

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

func TestCheckCapacity(t *testing.T) {
	qs := NewCapacityQueries(`cluster="prod"`)
	quota := func(v float64, code, name string) *model.Sample {
		return sample(v, "account", "111122223333", "region", "eu-west-1", "service", "ec2", "quota_code", code, "quota_name", name)
	}
	q := fakeQuerier{
		qs.Quotas: {
			quota(1.05, "L-1216C47A", "Running On-Demand Standard instances"),
			quota(0.95, "L-0263D0A3", "EC2-VPC Elastic IPs"),
			quota(0.40, "L-DF5E4CA3", "Network interfaces per Region"),
		},
		qs.ZoneIPs:  {sample(12, "zone", "eu-west-1a"), sample(400, "zone", "eu-west-1b")},
		qs.SurgeIPs: {sample(30)},
	}
	fs := CheckCapacity(context.Background(), q, `cluster="prod"`)
	by := findingsBy(fs)
	if f, ok := by["blocker ec2 Running On-Demand Standard instances (L-1216C47A)"]; !ok || !strings.Contains(f.Message, "105%") || f.Source != "account 111122223333 eu-west-1" {
		t.Errorf("quota blocker: %+v, %v\n%+v", f, ok, fs)
	}
	if _, ok := by["warning ec2 EC2-VPC Elastic IPs (L-0263D0A3)"]; !ok {
		t.Errorf("quota warning missing: %+v", fs)
	}
	if f := by["info AWS quotas"]; f.Message != "1 quotas have room for the surge" {
		t.Errorf("info: %+v", f)
	}
	if f, ok := by["blocker zone eu-west-1a"]; !ok || !strings.Contains(f.Message, "12 free addresses, a surge node takes 30") {
		t.Errorf("zone a: %+v, %v", f, ok)
	}
	if _, ok := by["info zone eu-west-1b"]; !ok {
		t.Errorf("zone b: %+v", fs)
	}

	// Without the exporter's AWS collectors: unknown, never clean.
	empty := fakeQuerier{qs.Quotas: {}, qs.ZoneIPs: {}, qs.SurgeIPs: {}}
	fs = CheckCapacity(context.Background(), empty, `cluster="prod"`)
	if r := (Report{Findings: fs}); r.Count(Unknown) != 2 || r.ExitCode() != ExitUnknown {
		t.Errorf("no metrics: %+v", fs)
	}
	fs = CheckCapacity(context.Background(), failingQuerier{}, "")
	if r := (Report{Findings: fs}); r.Count(Unknown) != 2 {
		t.Errorf("failing querier: %+v", fs)
	}
}
