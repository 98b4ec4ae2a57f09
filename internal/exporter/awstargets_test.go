package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors/cni"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// TestTwoAccountsTwoRegions runs the AWS collectors as Run builds them,
// with two --aws.role-arn and two --aws.region, against the fake AWS
// through the real SDK: four targets, each with its own subnets. The
// registry gathers without error, both collectors succeed, and every
// AWS-derived family has the series of each of the four targets, told
// apart by their account and region labels (before those labels, the cni
// series of two targets collided and were dropped while
// upgradeguard_collector_success said 1).
func TestTwoAccountsTwoRegions(t *testing.T) {
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	const cluster = "demo"
	accounts := []string{"111111111111", "222222222222"}
	regions := []string{"us-east-1", "eu-west-1"}
	type target struct{ account, region string }
	var targets []target
	for i, acct := range accounts {
		for j, region := range regions {
			a := srv.AddAccount(acct, region)
			targets = append(targets, target{acct, region})
			// The same zones and CIDRs in every target, different free
			// addresses: only the labels tell the series apart.
			s, err := a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a",
				Tags: map[string]string{cni.ClusterTagPrefix + cluster: "shared"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.AddInstance(awsfake.InstanceSpec{Type: "m5.large", Subnet: s.ID, SecondaryIPs: 1 + 2*i + j}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The base credentials are the default account's; each role is assumed
	// in every region.
	t.Setenv("AWS_ACCESS_KEY_ID", awsfake.AccessKeyFor(awsfake.DefaultAccountID))
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsfake.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	args := []string{"--cluster=" + cluster, "--collector.cni", "--collector.awsquota", "--aws.endpoint-url=" + srv.URL(),
		"--aws.api-rate=1000", "--aws.api-burst=1000"}
	for _, r := range regions {
		args = append(args, "--aws.region="+r)
	}
	for _, a := range accounts {
		args = append(args, "--aws.role-arn=arn:aws:iam::"+a+":role/upgradeguard")
	}
	cfg, err := parseFlags(t, args...)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	informers := kube.NewInformers(fake.NewClientset(shardCluster()...), kube.Options{NodeLabels: cfg.Nodes.NodeLabels()}, logger)
	reg := prometheus.NewRegistry()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{kube.ENIConfigResource: "ENIConfigList"})
	set, refreshers, err := newSet(ctx, cfg, informers, dyn, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(set)
	informers.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := informers.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	if len(refreshers) != 4*4 { // cni and awsquota's three, per target
		t.Fatalf("%d refreshers, want 16 (four targets)", len(refreshers))
	}
	runOnce(ctx, t, refreshers)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	if n := len(byName["upgradeguard_collector_success"].GetMetric()); n < 2 {
		t.Errorf("%d upgradeguard_collector_success series, want the cni and awsquota ones", n)
	}
	for _, m := range byName["upgradeguard_collector_success"].GetMetric() {
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("upgradeguard_collector_success{collector=%q} = %v, want 1", labelValue(m.GetLabel(), "collector"), m.GetGauge().GetValue())
		}
	}
	want := make([]string, 0, len(targets))
	for _, tg := range targets {
		want = append(want, tg.account+"/"+tg.region)
	}
	slices.Sort(want)
	aws := map[string]bool{}
	descs := make(chan *prometheus.Desc)
	go func() {
		cni.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		aws[descName.FindStringSubmatch(d.String())[1]] = true
	}
	for _, name := range []string{"upgradeguard_subnet_available_ips", "upgradeguard_zone_available_ips", "upgradeguard_vpc_cni_setting",
		"upgradeguard_node_pod_ips", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "upgradeguard_aws_quota_limit", "upgradeguard_aws_quota_usage",
		"upgradeguard_aws_api_requests_total"} {
		aws[name] = true
		if byName[name] == nil {
			t.Errorf("no %s series", name)
		}
	}
	for name, mf := range byName {
		if !aws[name] && !strings.HasPrefix(name, "upgradeguard_aws_") {
			continue
		}
		seen := map[string]bool{}
		for _, m := range mf.GetMetric() {
			acct, region := labelValue(m.GetLabel(), "account"), labelValue(m.GetLabel(), "region")
			if name == "upgradeguard_aws_api_requests_total" && acct == "" {
				continue // the STS calls that find the account
			}
			if acct == "" || region == "" {
				t.Errorf("%s %v: no account or region", name, m.GetLabel())
			}
			seen[acct+"/"+region] = true
		}
		got := make([]string, 0, len(seen))
		for k := range seen {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: series of targets %v, want %v", name, got, want)
		}
	}
	// Each target's zone total is its own: 251 usable minus its instance's
	// primary and secondary addresses.
	zones := map[string]float64{}
	for _, m := range byName["upgradeguard_zone_available_ips"].GetMetric() {
		zones[fmt.Sprintf("%s/%s", labelValue(m.GetLabel(), "account"), labelValue(m.GetLabel(), "region"))] = m.GetGauge().GetValue()
	}
	for i, acct := range accounts {
		for j, region := range regions {
			if got, want := zones[acct+"/"+region], float64(251-2-2*i-j); got != want {
				t.Errorf("zone_available_ips of %s/%s = %v, want %v", acct, region, got, want)
			}
		}
	}
}

// runOnce runs the refreshers as Run does until each has completed a
// refresh, so that their last-success timestamps are served.
func runOnce(ctx context.Context, t *testing.T, refreshers []*awsapi.Refresher) {
	t.Helper()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, r := range refreshers {
		go r.Run(rctx, slog.New(slog.DiscardHandler))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range refreshers {
		for {
			last, err := r.Status()
			if !last.IsZero() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("refresher %s of %s in %s: no complete refresh (%v)", r.Collector, r.Account, r.Region, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
