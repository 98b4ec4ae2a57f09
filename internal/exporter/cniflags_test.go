package exporter

import (
	"testing"

	"github.com/alecthomas/kingpin/v2"
)

// The VPC CNI setting flags override the aws-node DaemonSet only when given.
func TestCNIFlagsAreOverridesWhenGiven(t *testing.T) {
	parse := func(args ...string) *Config {
		t.Helper()
		app := kingpin.New("test", "")
		cmd := app.Command("exporter", "")
		cfg := AddFlags(cmd)
		if _, err := app.Parse(append([]string{"exporter"}, args...)); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	o := parse().cniOverrides()
	if o.PrefixDelegation != nil || o.CustomNetworking != nil || o.WarmENITarget != nil || o.WarmIPTarget != nil ||
		o.MinimumIPTarget != nil || o.WarmPrefixTarget != nil {
		t.Errorf("no flags gave overrides %+v", o)
	}
	o = parse("--no-collector.cni.prefix-delegation", "--collector.cni.custom-networking",
		"--collector.awsquota.enis-per-node=3", "--collector.awsquota.warm-ip-target=0", "--collector.awsquota.warm-prefix-target=2").cniOverrides()
	if o.PrefixDelegation == nil || *o.PrefixDelegation || o.CustomNetworking == nil || !*o.CustomNetworking ||
		o.WarmENITarget == nil || *o.WarmENITarget != 2 || o.WarmIPTarget == nil || *o.WarmIPTarget != 0 ||
		o.MinimumIPTarget != nil || o.WarmPrefixTarget == nil || *o.WarmPrefixTarget != 2 {
		t.Errorf("overrides %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
	if err := parse("--collector.awsquota.enis-per-node=0").cniOverrides().Validate(); err == nil {
		t.Error("0 ENIs per node accepted")
	}
}
