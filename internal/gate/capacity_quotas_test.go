package gate

import "testing"

func TestCapacityQuotas(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"60", []string{"__name__", "upgradeguard_aws_quota_usage"}, "capacity/quotas", Fail, "usage 60 + surge 8 > 1 of limit 64"},
		{"2", []string{"__name__", "upgradeguard_aws_surge_unresolved_groups"}, "capacity/quotas", Unknown, "lower bound"},
		{"NaN", []string{"__name__", "upgradeguard_aws_quota_usage"}, "capacity/quotas", Unknown, "NaN"},
		{"", []string{"__name__", "upgradeguard_aws_quota_limit"}, "capacity/quotas", Unknown, "no limit"},
		{"", []string{"__name__", "upgradeguard_aws_quota_surge_demand"}, "capacity/quotas", Unknown, "no upgradeguard_aws_quota_surge_demand series"},
	})
	lenient, _ := newGate(t, f, testPolicy(t, "capacity: {allow_unresolved_groups: true}"))
	f.set(replace(healthy(), "2", "__name__", "upgradeguard_aws_surge_unresolved_groups")...)
	if e := eval(t, lenient, "node-b"); e.Verdict != GO {
		t.Errorf("allow_unresolved_groups: %s", dump(e))
	}
}
