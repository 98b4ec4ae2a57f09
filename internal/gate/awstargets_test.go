package gate

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// awsTargets is healthy() with its AWS series in two accounts and two
// regions: account 1 in eu-west-1 (zones a 120 and b 80 free, largest
// surge 18 addresses), account 2 in us-east-1 (zone us-east-1a with
// zone2 free, largest surge 100) and account 3 in eu-west-1 as well (zone
// eu-west-1a with zone3 free, surge 10). cniAge is how old account 2's cni
// refresh is.
func awsTargets(zone2, zone3 string, cniAge time.Duration) []series {
	ss := healthy()
	for _, name := range []string{"upgradeguard_zone_available_ips", "upgradeguard_aws_asg_surge_ips", "upgradeguard_aws_refresh_last_success_timestamp_seconds"} {
		ss = replace(ss, "", "__name__", name)
	}
	ago := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(-d).Unix(), 10) }
	for _, tg := range []struct {
		account, region string
		cni             time.Duration
	}{{"1", "eu-west-1", time.Minute}, {"2", "us-east-1", cniAge}, {"3", "eu-west-1", time.Minute}} {
		kv := []string{"account", tg.account, "region", tg.region}
		ss = append(ss,
			j(ago(tg.cni), append([]string{"__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "cni"}, kv...)...),
			j(ago(2*time.Minute), append([]string{"__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "awsquota_usage"}, kv...)...),
			j(ago(50*time.Minute), append([]string{"__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "awsquota_limits"}, kv...)...))
	}
	return append(ss,
		j("120", "__name__", "upgradeguard_zone_available_ips", "account", "1", "region", "eu-west-1", "zone", "eu-west-1a", "role", "node"),
		j("80", "__name__", "upgradeguard_zone_available_ips", "account", "1", "region", "eu-west-1", "zone", "eu-west-1b", "role", "node"),
		j("18", "__name__", "upgradeguard_aws_asg_surge_ips", "account", "1", "region", "eu-west-1", "asg", "nodes-a"),
		j(zone2, "__name__", "upgradeguard_zone_available_ips", "account", "2", "region", "us-east-1", "zone", "us-east-1a", "role", "node"),
		j("100", "__name__", "upgradeguard_aws_asg_surge_ips", "account", "2", "region", "us-east-1", "asg", "big"),
		j(zone3, "__name__", "upgradeguard_zone_available_ips", "account", "3", "region", "eu-west-1", "zone", "eu-west-1a", "role", "node"),
		j("10", "__name__", "upgradeguard_aws_asg_surge_ips", "account", "3", "region", "eu-west-1", "asg", "small"),
	)
}

// Each account and region is judged on its own: its zones against its own
// groups' surge (account 1's zone b, 80 free, is not held to account 2's
// surge of 100), the unhealthy one named; and each target's refreshes are
// fresh or not on their own.
func TestAWSTargetsJudgedApart(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))

	f.set(awsTargets("500", "40", time.Minute)...)
	e := eval(t, g, "")
	wantRow(t, e, "capacity/ips", Pass, "")
	wantRow(t, e, "monitoring/aws-fresh", Pass, "")

	f.set(awsTargets("30", "40", time.Minute)...)
	e = eval(t, g, "")
	wantRow(t, e, "capacity/ips", Fail, "us-east-1a (account 2) has 30 free, needs 10")
	if r := row(t, e, "capacity/ips"); strings.Contains(r.Why, "eu-west-1") || e.Verdict == GO {
		t.Errorf("only account 2's zone is short: %s %q, verdict %s", r.Status, r.Why, e.Verdict)
	}

	// Two accounts in one region, same zone name: account 3's own zone a.
	f.set(awsTargets("500", "5", time.Minute)...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "capacity/ips", Fail, "eu-west-1a (account 3) has 5 free, needs 1")
	if r := row(t, e, "capacity/ips"); strings.Contains(r.Why, "account 1") {
		t.Errorf("account 1's zone a is not short: %q", r.Why)
	}

	// Account 2's cni data is an hour old, the others' a minute.
	f.set(awsTargets("500", "40", time.Hour)...)
	e = eval(t, g, "")
	wantRow(t, e, "monitoring/aws-fresh", Fail, "AWS data stale: cni/2/us-east-1 1h0m")
	if r := row(t, e, "monitoring/aws-fresh"); strings.Contains(r.Why, "eu-west-1") {
		t.Errorf("only account 2 is stale: %q", r.Why)
	}
	// Account 2 never completed a cni refresh while its other refreshers did.
	f.set(replace(awsTargets("500", "40", time.Minute), "", "collector", "cni", "account", "2")...)
	wantRow(t, eval(t, g, ""), "monitoring/aws-fresh", Unknown, "cni/2/us-east-1 has no successful refresh yet")
}
