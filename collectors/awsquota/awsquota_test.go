package awsquota

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

const testRegion = "us-east-1"

type env struct {
	srv  *awsfake.Server
	acct *awsfake.Account
	reg  *prometheus.Registry // holds the request counter
	logs *syncBuffer
}

// syncBuffer is a log sink the concurrent refreshers can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &env{srv: srv, acct: srv.Account(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
}

// collector builds the SDK clients the way the exporter does: budgeted and
// counted by awsapi, pointed at the fake.
func (e *env) collector(t testing.TB, mutate func(*Options)) *Collector {
	t.Helper()
	reqs, err := awsapi.NewRequests(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.srv.Config(testRegion)
	cfg.APIOptions = append(cfg.APIOptions, reqs.APIOptions(awsapi.NewBudgets(1000, 1000).For(e.acct.ID, testRegion)))
	opts := Options{
		Account: e.acct.ID,
		Regions: []Region{{Name: testRegion, Clients: Clients{
			EC2:           ec2.NewFromConfig(cfg),
			AutoScaling:   autoscaling.NewFromConfig(cfg),
			ELBv2:         elasticloadbalancingv2.NewFromConfig(cfg),
			ELB:           elasticloadbalancing.NewFromConfig(cfg),
			ServiceQuotas: servicequotas.NewFromConfig(cfg),
		}}},
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	}
	if mutate != nil {
		mutate(&opts)
	}
	return New(opts)
}

// refresh runs every refresher once and returns their joined errors.
func refresh(t *testing.T, c *Collector) error {
	t.Helper()
	var errs []error
	for _, r := range c.Refreshers() {
		errs = append(errs, r.Refresh(context.Background()))
	}
	return errors.Join(errs...)
}

// scrape gathers the collector's metrics, keyed "metric/quota_code",
// "metric/asg" or "metric/asg/instance_id".
func scrape(t *testing.T, c *Collector) (map[string]float64, error) {
	t.Helper()
	var updateErr error
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors.AsPrometheus(c, func(err error) { updateErr = err }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			code, instance := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "quota_code", "asg":
					code = l.GetValue()
				case "instance_id":
					instance = l.GetValue()
				}
			}
			if instance != "" {
				code += "/" + instance
			}
			if code == "" && mf.GetName() != "upgradeguard_aws_surge_unresolved_groups" {
				continue
			}
			k := mf.GetName() + "/" + code
			if _, dup := out[k]; dup {
				t.Errorf("duplicate series %s", k)
			}
			out[k] = m.GetGauge().GetValue()
		}
	}
	return out, updateErr
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case v < 0 && ok:
			t.Errorf("%s = %v, want absent", k, g)
		case v >= 0 && !ok:
			t.Errorf("%s absent, want %v", k, v)
		case v >= 0 && g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

const (
	usage = "upgradeguard_aws_quota_usage/"
	limit = "upgradeguard_aws_quota_limit/"
	surge = "upgradeguard_aws_quota_surge_demand/"

	groupIPs = "upgradeguard_aws_asg_surge_ips/"
)

func TestFamilyAndClass(t *testing.T) {
	for typ, want := range map[string]*vcpuClass{
		"m5.large": classStandard, "c5.4xlarge": classStandard, "t3.micro": classStandard, "im4gn.large": classStandard,
		"g4dn.xlarge": classG, "vt1.3xlarge": classG, "p3.2xlarge": classP, "x1e.xlarge": classX, "f1.2xlarge": classF,
		"inf1.xlarge": classInf, "dl1.24xlarge": classDL, "trn1.2xlarge": classTrn, "hpc6a.48xlarge": classHPC,
		"u-6tb1.metal": classMem, "u7i-12tb.224xlarge": classMem, "mac1.metal": nil,
	} {
		if got := classOf(typ); got != want {
			t.Errorf("classOf(%s) = %v, want %v", typ, got, want)
		}
	}
}

// fixture builds the mix of the usage test and returns the hand-computed
// usage, keyed as scrape keys it.
func fixture(t *testing.T, a *awsfake.Account) map[string]float64 {
	t.Helper()
	sub := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.1.0.0/20", AZ: "us-east-1a"}))
	subB := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.1.16.0/20", AZ: "us-east-1b"}))
	add := func(spec awsfake.InstanceSpec) awsfake.Instance {
		if spec.Subnet == "" {
			spec.Subnet = sub.ID
		}
		return must[awsfake.Instance](t)(a.AddInstance(spec))
	}
	add(awsfake.InstanceSpec{Type: "m5.xlarge"})                        // 4 standard
	add(awsfake.InstanceSpec{Type: "c5.4xlarge"})                       // 16 standard
	add(awsfake.InstanceSpec{Type: "t3.medium", State: "pending"})      // 2 standard
	add(awsfake.InstanceSpec{Type: "c5.18xlarge", State: "stopped"})    // not counted
	add(awsfake.InstanceSpec{Type: "m5.24xlarge", State: "terminated"}) // not counted
	add(awsfake.InstanceSpec{Type: "m5.large", Lifecycle: "spot"})      // 2 standard spot
	add(awsfake.InstanceSpec{Type: "trn1.2xlarge", Lifecycle: "spot"})  // 8 Trn spot
	add(awsfake.InstanceSpec{Type: "g4dn.xlarge"})                      // 4 G
	add(awsfake.InstanceSpec{Type: "inf1.xlarge"})                      // 4 Inf
	add(awsfake.InstanceSpec{Type: "inf1.xlarge", Subnet: subB.ID})     // 4 Inf
	add(awsfake.InstanceSpec{Type: "p3.2xlarge"})                       // 8 P
	add(awsfake.InstanceSpec{Type: "dl1.24xlarge"})                     // 96 DL
	add(awsfake.InstanceSpec{Type: "u-6tb1.56xlarge"})                  // 224 High Memory
	host := must[awsfake.Host](t)(a.AddHost("m5.24xlarge", "us-east-1a", 96, nil))
	add(awsfake.InstanceSpec{Type: "m5.24xlarge", HostID: host.ID}) // on a dedicated host: not counted

	for _, v := range []awsfake.VolumeSpec{
		{Type: "gp3", SizeGiB: 100}, {Type: "gp3", SizeGiB: 924}, {Type: "gp2", SizeGiB: 512},
		{Type: "io2", SizeGiB: 2048}, {Type: "st1", SizeGiB: 256},
	} {
		vol := must[awsfake.Volume](t)(a.AddVolume(v))
		must[awsfake.Snapshot](t)(a.AddSnapshot(awsfake.SnapshotSpec{Volume: vol.ID}))
	}
	must[awsfake.Snapshot](t)(a.AddSnapshot(awsfake.SnapshotSpec{Owner: "amazon", SizeGiB: 8})) // not ours
	must[awsfake.Address](t)(a.AddAddress("", nil))
	must[awsfake.Address](t)(a.AddAddress("", nil))
	must[awsfake.NATGateway](t)(a.AddNATGateway(sub.ID, false, nil))
	must[awsfake.NATGateway](t)(a.AddNATGateway(sub.ID, true, nil))
	must[awsfake.NATGateway](t)(a.AddNATGateway(subB.ID, false, nil))
	alb := must[awsfake.LoadBalancer](t)(a.AddLoadBalancer(awsfake.LoadBalancerSpec{Name: "web", Subnets: []string{sub.ID, subB.ID}}))
	must[awsfake.LoadBalancer](t)(a.AddLoadBalancer(awsfake.LoadBalancerSpec{Name: "nlb", Type: "network", Subnets: []string{sub.ID}}))
	must[awsfake.LoadBalancer](t)(a.AddLoadBalancer(awsfake.LoadBalancerSpec{Name: "nlb2", Type: "network", Subnets: []string{subB.ID}}))
	must[awsfake.TargetGroup](t)(a.AddTargetGroup(awsfake.TargetGroup{Name: "tg1", LoadBalancerARNs: []string{alb.ARN}}))
	must[awsfake.ClassicLoadBalancer](t)(a.AddClassicLoadBalancer("old", []string{sub.ID}, nil))
	must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate("lt1", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil))

	return map[string]float64{
		usage + "L-1216C47A": 22, usage + "L-34B43A08": 2, usage + "L-6B0D517C": 8,
		usage + "L-DB2E81BA": 4, usage + "L-1945791B": 8, usage + "L-417A185B": 8,
		usage + "L-6E869C2A": 96, usage + "L-43DA4232": 224, usage + "L-7295265B": 0, usage + "L-2C3B7624": 0,
		usage + "L-7A658B76": 1, usage + "L-D18FCD1D": 0.5, usage + "L-09BD8365": 2, usage + "L-82ACEF56": 0.25, usage + "L-17AF77E8": 0,
		usage + "L-309BACF6": 5, usage + "L-0263D0A3": 4, // two addresses, and the public NAT gateways' two
		usage + "L-FE5A380F": 2,
		usage + "L-53DA6B97": 1, usage + "L-69A177A2": 2, usage + "L-E9E9831D": 1, usage + "L-B22855CB": 1,
		usage + "L-FB451C26": 1, usage + "L-CDE20ADC": 0, usage + "L-6B80B8FA": 0,
		usage + "L-DF5E4CA3": float64(len(a.ENIs())),
		limit + "L-1216C47A": 768, limit + "L-DF5E4CA3": 5000, limit + "L-CDE20ADC": 500, limit + "L-7A658B76": 50,
	}
}

func TestUsageFixture(t *testing.T) {
	e := newEnv(t)
	e.srv.SetPageSize(2, 2)
	want := fixture(t, e.acct)
	c := e.collector(t, nil)

	got, err := scrape(t, c)
	if !errors.Is(err, collectors.ErrNoData) || len(got) != 0 {
		t.Fatalf("before any refresh: %v, %v; want ErrNoData and nothing", got, err)
	}
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, err = scrape(t, c)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, want)
	// 11 pending or running instances, two a page.
	if n := e.srv.Calls("DescribeInstances"); n != 6 {
		t.Errorf("DescribeInstances called %d times, want 6 pages", n)
	}
	if n := e.srv.Calls("DescribeVolumes"); n < 3 {
		t.Errorf("DescribeVolumes called %d times, want paginated (>= 3)", n)
	}
	if problems, err := testutil.CollectAndLint(collectors.AsPrometheus(c, nil)); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// Instance types are asked about once, not on every refresh.
	types := e.srv.Calls("DescribeInstanceTypes")
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Calls("DescribeInstanceTypes"); n != types {
		t.Errorf("DescribeInstanceTypes called again: %d -> %d", types, n)
	}
}

func TestDefaultQuotaFallback(t *testing.T) {
	e := newEnv(t)
	e.acct.ClearAppliedQuota("ec2", "L-1216C47A")
	c := e.collector(t, nil)
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, err := scrape(t, c)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, map[string]float64{limit + "L-1216C47A": 5, limit + "L-DB2E81BA": 64})
}

func TestAccessDeniedKeepsOthersFresh(t *testing.T) {
	e := newEnv(t)
	must[awsfake.Volume](t)(e.acct.AddVolume(awsfake.VolumeSpec{Type: "gp3", SizeGiB: 512}))
	c := e.collector(t, nil)

	// Denied from the start: the EBS usage is absent, the rest is there.
	e.srv.Fail("DescribeVolumes", awsfake.Fault{Code: awsfake.Denied})
	err := refresh(t, c)
	if err == nil || !strings.Contains(err.Error(), "DescribeVolumes") {
		t.Fatalf("refresh error %v, want one naming DescribeVolumes", err)
	}
	got, err := scrape(t, c)
	if err == nil {
		t.Error("Update returned no error with DescribeVolumes failing")
	}
	expect(t, got, map[string]float64{usage + "L-7A658B76": -1, usage + "L-1216C47A": 0, limit + "L-7A658B76": 50})
	if !strings.Contains(e.logs.String(), "operation=ec2:DescribeVolumes") || !strings.Contains(e.logs.String(), "code=UnauthorizedOperation") {
		t.Errorf("no clear log line:\n%s", e.logs)
	}

	// Known, then denied: the EBS usage keeps its last good value while
	// the instances' usage moves on.
	e.srv.Clear()
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	e.srv.Fail("DescribeVolumes", awsfake.Fault{Code: "AccessDenied", Status: 403})
	must[awsfake.Volume](t)(e.acct.AddVolume(awsfake.VolumeSpec{Type: "gp3", SizeGiB: 512}))
	must[awsfake.Instance](t)(e.acct.AddInstance(awsfake.InstanceSpec{Type: "c5.xlarge"}))
	if err := refresh(t, c); err == nil {
		t.Fatal("refresh succeeded with DescribeVolumes denied")
	}
	got, err = scrape(t, c)
	if err == nil {
		t.Error("Update returned no error with DescribeVolumes failing")
	}
	expect(t, got, map[string]float64{usage + "L-7A658B76": 0.5, usage + "L-1216C47A": 4})

	// Recovered: fresh again, and Update succeeds.
	e.srv.Clear()
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, err = scrape(t, c)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, map[string]float64{usage + "L-7A658B76": 1})
}

func TestThrottlingStorm(t *testing.T) {
	e := newEnv(t)
	must[awsfake.Instance](t)(e.acct.AddInstance(awsfake.InstanceSpec{Type: "m5.xlarge"}))
	c := e.collector(t, nil)
	// Two failures per operation: the standard retryer's three attempts
	// get through every one.
	ops := []string{"DescribeInstances", "DescribeNetworkInterfaces", "DescribeVolumes", "DescribeSecurityGroups",
		"DescribeAccountLimits", "elbv2:DescribeLoadBalancers", "ListServiceQuotas"}
	for _, op := range ops {
		e.srv.Fail(op, awsfake.Fault{Code: awsfake.Throttle, Times: 2})
	}
	if err := refresh(t, c); err != nil {
		t.Fatalf("refresh did not get through the throttling: %v", err)
	}
	got, err := scrape(t, c)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, map[string]float64{usage + "L-1216C47A": 4, limit + "L-1216C47A": 768})

	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	throttles := 0.0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && (l.GetValue() == "RequestLimitExceeded" || l.GetValue() == "Throttling" || l.GetValue() == "TooManyRequestsException") {
					throttles += m.GetCounter().GetValue()
				}
			}
		}
	}
	if want := float64(2 * len(ops)); throttles != want {
		t.Errorf("counted %v throttled requests, want %v", throttles, want)
	}
}

func TestDeletedResourcesDisappear(t *testing.T) {
	e := newEnv(t)
	a := e.acct
	inst := must[awsfake.Instance](t)(a.AddInstance(awsfake.InstanceSpec{Type: "m5.xlarge"}))
	vol := must[awsfake.Volume](t)(a.AddVolume(awsfake.VolumeSpec{Type: "io1", SizeGiB: 1024}))
	sub := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.2.0.0/24"}))
	lb := must[awsfake.LoadBalancer](t)(a.AddLoadBalancer(awsfake.LoadBalancerSpec{Name: "web", Subnets: []string{sub.ID}}))
	c := e.collector(t, nil)
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, _ := scrape(t, c)
	enis := got[usage+"L-DF5E4CA3"]
	expect(t, got, map[string]float64{usage + "L-1216C47A": 4, usage + "L-FD252861": 1, usage + "L-53DA6B97": 1})

	if err := a.DeleteInstance(inst.ID); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{a.DeleteVolume(vol.ID), a.DeleteLoadBalancer(lb.ARN)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, _ = scrape(t, c)
	expect(t, got, map[string]float64{usage + "L-1216C47A": 0, usage + "L-FD252861": 0, usage + "L-53DA6B97": 0})
	if got[usage+"L-DF5E4CA3"] != enis-2 {
		t.Errorf("ENIs %v, want %v (instance's and load balancer's gone)", got[usage+"L-DF5E4CA3"], enis-2)
	}
}

func TestSurgeDemand(t *testing.T) {
	e := newEnv(t)
	a := e.acct
	sub := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.3.0.0/20", AZ: "us-east-1a"}))
	lt := func(name, typ string, spot bool, bds ...awsfake.BlockDevice) {
		must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate(name, awsfake.LaunchTemplateData{InstanceType: typ, Spot: spot, BlockDevices: bds}, nil))
	}
	lt("general", "m5.2xlarge", false, awsfake.BlockDevice{DeviceName: "/dev/xvda", VolumeType: "gp3", SizeGiB: 100})
	lt("gpu", "g4dn.xlarge", false,
		awsfake.BlockDevice{DeviceName: "/dev/xvda", VolumeType: "gp3", SizeGiB: 200},
		awsfake.BlockDevice{DeviceName: "/dev/xvdb", VolumeType: "gp2", SizeGiB: 50})
	lt("other-cluster", "c5.18xlarge", false)
	must[awsfake.LaunchConfiguration](t)(a.AddLaunchConfiguration(awsfake.LaunchConfiguration{
		Name: "spot-lc", InstanceType: "c5.xlarge", SpotPrice: "0.1",
		BlockDevices: []awsfake.BlockDevice{{DeviceName: "/dev/xvda", VolumeType: "st1", SizeGiB: 512}},
	}))
	tag := map[string]string{"kubernetes.io/cluster/demo": "owned"}
	for _, g := range []awsfake.ASGSpec{
		{Name: "general", LaunchTemplate: "general", Desired: 3, Max: 10, Tags: tag},
		{Name: "gpu", LaunchTemplate: "gpu", Desired: 1, Max: 10, Tags: tag},
		{Name: "other", LaunchTemplate: "other-cluster", Desired: 1, Max: 10, Tags: map[string]string{"kubernetes.io/cluster/other": "owned"}},
		{Name: "named-spot", LaunchConfiguration: "spot-lc", Desired: 1, Max: 10},
	} {
		g.Subnets = []string{sub.ID}
		must[awsfake.ASG](t)(a.AddASG(g))
	}
	e.srv.SetPageSize(1, 1)
	c := e.collector(t, func(o *Options) {
		o.ClusterName, o.ASGNames, o.SurgeNodes, o.CNI.ENIs = "demo", []string{"named-spot"}, 2, 3
	})
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, err := scrape(t, c)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, map[string]float64{
		surge + "L-1216C47A": 2 * 8,            // general: 2 x m5.2xlarge
		surge + "L-DB2E81BA": 2 * 4,            // gpu: 2 x g4dn.xlarge
		surge + "L-34B43A08": 2 * 4,            // named-spot: 2 x c5.xlarge spot
		surge + "L-DF5E4CA3": 6,                // 2 nodes x 3 ENIs each at start
		surge + "L-7A658B76": 2 * 200.0 / 1024, // gpu's gp3 beats general's
		surge + "L-D18FCD1D": 2 * 50.0 / 1024,
		surge + "L-82ACEF56": 2 * 512.0 / 1024,
		// ASG usage from DescribeAccountLimits; other-cluster's c5.18xlarge counts in usage only.
		usage + "L-CDE20ADC": 4, usage + "L-6B80B8FA": 1,
		usage + "L-1216C47A": 3*8 + 72, usage + "L-DB2E81BA": 4,
		usage + "L-34B43A08": 4, // the launched spot c5.xlarge
	})
	if _, ok := got[surge+"L-F7808C92"]; ok {
		t.Error("surge demand on a class no group uses")
	}
}

func (e *env) collectorLogger() *slog.Logger { return slog.New(slog.NewTextHandler(e.logs, nil)) }

func TestSurgeMixedInstancesAndAddresses(t *testing.T) {
	e := newEnv(t)
	a := e.acct
	sub := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.4.0.0/20", AZ: "us-east-1a"}))
	must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate("mixed", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil))
	must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate("plain", awsfake.LaunchTemplateData{InstanceType: "r5.large"}, nil))
	a.AddInstanceType(awsfake.InstanceType{Name: "mac2.metal", VCPUs: 12, MaxENIs: 8, IPv4PerENI: 30})
	must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate("unknown", awsfake.LaunchTemplateData{InstanceType: "mac2.metal"}, nil))
	tag := map[string]string{"kubernetes.io/cluster/demo": "owned"}
	half := int32(50)
	for _, g := range []awsfake.ASGSpec{
		// Overrides: the surge may launch c5.xlarge (4 vCPUs) as on-demand
		// or spot, since half the capacity above the base is spot.
		{Name: "mixed", LaunchTemplate: "mixed", Desired: 2, Max: 10, Tags: tag, MixedInstances: &awsfake.MixedInstances{
			InstanceTypes: []string{"m5.large", "c5.xlarge"}, OnDemandPercentageAboveBaseCapacity: &half,
		}},
		{Name: "plain", LaunchTemplate: "plain", Desired: 1, Max: 10, Tags: tag},
		// A type in no vCPU class: its demand is unknown and counted as such.
		{Name: "unknown", LaunchTemplate: "unknown", Desired: 0, Max: 10, Tags: tag},
	} {
		g.Subnets = []string{sub.ID}
		must[awsfake.ASG](t)(a.AddASG(g))
	}
	for _, tc := range []struct {
		name string
		cni  CNISettings
		want map[string]float64
	}{
		{"warm ENI", CNISettings{ENIs: 2}, map[string]float64{
			surge + "L-1216C47A": 4, surge + "L-34B43A08": 4, // c5.xlarge, on-demand or spot
			surge + "L-DF5E4CA3": 2,
			// m5.large 2 ENIs x 10, c5.xlarge 2 x 15, r5.large 2 x 10.
			groupIPs + "mixed": 30, groupIPs + "plain": 20, groupIPs + "unknown": -1,
			"upgradeguard_aws_surge_unresolved_groups/": 1,
		}},
		{"warm IP target", CNISettings{ENIs: 2, WarmIPTarget: 5, MinimumIPTarget: 20}, map[string]float64{
			// 20 secondaries: c5.xlarge needs 2 ENIs (14 each), m5.large and
			// r5.large 3 (9 each).
			surge + "L-DF5E4CA3": 3,
			groupIPs + "mixed":   3 + 20, groupIPs + "plain": 3 + 20,
		}},
		{"prefix delegation", CNISettings{ENIs: 2, PrefixDelegation: true, WarmPrefixTarget: 1}, map[string]float64{
			surge + "L-DF5E4CA3": 1,
			groupIPs + "mixed":   1 + 16, groupIPs + "plain": 1 + 16,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.reg = prometheus.NewRegistry()
			c := e.collector(t, func(o *Options) { o.ClusterName, o.CNI = "demo", tc.cni })
			if err := refresh(t, c); err != nil {
				t.Fatal(err)
			}
			got, err := scrape(t, c)
			if err != nil {
				t.Fatal(err)
			}
			expect(t, got, tc.want)
		})
	}
}

func TestCNIAtStart(t *testing.T) {
	m5 := typeInfo{vcpus: 2, enis: 3, ipv4PerENI: 10}
	for _, tc := range []struct {
		name        string
		c           CNISettings
		ti          typeInfo
		enis, addrs int64
	}{
		{"default warm ENI", CNISettings{ENIs: 2}, m5, 2, 20},
		{"warm ENI beyond the type's ENIs", CNISettings{ENIs: 5}, m5, 3, 30},
		{"warm IP target", CNISettings{ENIs: 2, WarmIPTarget: 3}, m5, 1, 4},
		{"minimum beats warm", CNISettings{WarmIPTarget: 3, MinimumIPTarget: 10}, m5, 2, 12},
		{"target beyond the type", CNISettings{MinimumIPTarget: 100}, m5, 3, 3 + 27},
		{"prefix delegation", CNISettings{PrefixDelegation: true, WarmPrefixTarget: 1}, m5, 1, 17},
		{"prefix delegation with IP target", CNISettings{PrefixDelegation: true, WarmPrefixTarget: 1, MinimumIPTarget: 40}, m5, 1, 1 + 3*16},
		{"unknown network shape", CNISettings{ENIs: 2}, typeInfo{vcpus: 2}, 0, 0},
	} {
		enis, addrs := tc.c.atStart(tc.ti)
		if enis != tc.enis || addrs != tc.addrs {
			t.Errorf("%s: %d ENIs, %d addresses; want %d, %d", tc.name, enis, addrs, tc.enis, tc.addrs)
		}
	}
}
