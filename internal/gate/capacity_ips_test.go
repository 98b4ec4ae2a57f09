package gate

import "testing"

func TestCapacityIPs(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"17", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"}, "capacity/ips", Fail, "eu-west-1b has 17 free"},
		{"NaN", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"}, "capacity/ips", Unknown, "eu-west-1b NaN"},
		{"", []string{"__name__", "upgradeguard_aws_asg_surge_ips"}, "capacity/ips", Unknown, "no upgradeguard_aws_asg_surge_ips"},
	})
	runRowCases(t, f, g, "node-a", []rowCase{
		{"", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1a"}, "capacity/ips", Unknown, `no upgradeguard_zone_available_ips for zone "eu-west-1a"`},
	})
	f.set(healthy()...)
	wantRow(t, eval(t, g, "node-zz"), "capacity/ips", Unknown, `zone of node "node-zz" is unknown`)
}
