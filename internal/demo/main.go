// Command demo brings up the testbed with a small simulated cluster, runs
// the exporter against it behind two Prometheus replicas and Thanos Query,
// prints where to look and what the exporter sees, and stays up until Ctrl-C.
// Run it with `make demo` from the repository root.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context) error {
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	faultRules := filepath.Join(os.TempDir(), fmt.Sprintf("upgradeguard-demo-fault-%d.yaml", os.Getpid()))
	if err := os.WriteFile(faultRules, []byte(faultRule), 0o644); err != nil {
		return err
	}
	defer os.Remove(faultRules)
	logf("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, Karpenter (kwok provider), 2 Prometheus + Thanos sidecars, Thanos Query;")
	logf("Prometheus loads upgradeguard's generated alerts (%s) and the demo's fault alert", generatedRules)
	tb, err := testbed.Start(startCtx, testbed.Options{Prometheus: true, Karpenter: true, Logf: logf, RuleFiles: []string{generatedRules, faultRules}})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the testbed")
		if err := tb.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping:", err)
		}
	}()

	bin := filepath.Join(tb.Dir, "upgradeguard")
	logf("building upgradeguard")
	build := exec.CommandContext(startCtx, "go", "build", "-o", bin, "./cmd/upgradeguard")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building upgradeguard (run the demo from the repository root): %w", err)
	}

	aws, err := awsfake.Start()
	if err != nil {
		return err
	}
	defer aws.Close()
	// The account of the cluster's region, so that instance and node names
	// say eu-west-1 as its zones do.
	acct := aws.AddAccount(awsfake.DefaultAccountID, region)
	// Replacement instances take a few seconds to launch, as on AWS (where
	// it is minutes).
	acct.SetTiming(awsfake.Timing{LaunchDelay: 3 * time.Second})
	pinned, err := createCluster(startCtx, tb, acct)
	if err != nil {
		return err
	}
	if err := createKarpenterPool(startCtx, tb); err != nil {
		return err
	}
	awsEnv := []string{
		"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	fault, stopFault, err := tb.ServeGauge("demo", "demo_fault")
	if err != nil {
		return err
	}
	defer stopFault()

	addr, err := testbed.FreeAddr()
	if err != nil {
		return err
	}
	if _, err := tb.StartProcess("upgradeguard-exporter", []string{bin, "exporter",
		"--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr,
		"--collector.cni", "--collector.awsquota", "--aws.region", region, "--aws.endpoint-url", aws.URL(), "--aws.cluster-name", "demo",
		// AWS is asked more often than the defaults (5m) so that the demo's
		// new subnet shows up quickly.
		"--collector.cni.interval", "10s", "--collector.awsquota.usage-interval", "30s",
	}, awsEnv); err != nil {
		return err
	}
	if err := tb.SetScrapeTargets("upgradeguard", []string{addr}); err != nil {
		return err
	}
	metricsURL := "http://" + addr + "/metrics"

	// Wait until the exporter sees every node Ready (the 12 instances' and
	// Karpenter's) and every pod under a PDB healthy, as the disruption
	// controller counts them.
	var mfs scrape.Families
	err = testbed.WaitFor(startCtx, 3*time.Minute, "the exporter to see 13 ready nodes and every PDB's pods healthy", func(ctx context.Context) (bool, error) {
		mfs, err = scrape.Get(ctx, metricsURL)
		if err != nil {
			return false, err
		}
		ready := 0
		for _, s := range mfs.Samples("upgradeguard_node_ready", nil) {
			ready += int(s.Value)
		}
		healthy := 0
		for _, w := range workloads {
			if w.MinAvailable == nil && w.MaxUnavailable == nil {
				continue
			}
			key := map[string]string{"namespace": w.Namespace, "pdb": w.Name}
			current, _ := mfs.Value("upgradeguard_pdb_current_healthy", key)
			expected, _ := mfs.Value("upgradeguard_pdb_expected_pods", key)
			if expected == float64(w.Replicas) && current == expected {
				healthy++
			}
		}
		zonesSeen := len(mfs.Samples("upgradeguard_zone_available_ips", nil))
		// Surge demand and the quota it counts against, from two refreshes.
		surge := 0
		if _, ok := mfs.Value("upgradeguard_aws_quota_limit", map[string]string{"quota_code": "L-1216C47A"}); ok {
			surge = len(mfs.Samples("upgradeguard_aws_quota_surge_demand", nil))
		}
		return ready == 13 && healthy == 3 && zonesSeen == 3 && surge > 0,
			fmt.Errorf("%d nodes ready, %d of 3 PDBs with all their pods healthy, %d zones' IPs known, %d surge demands", ready, healthy, zonesSeen, surge)
	})
	if err != nil {
		return err
	}
	if err := waitKarpenterNode(startCtx, tb); err != nil {
		return err
	}

	fmt.Println()
	fmt.Println("upgradeguard demo is up:")
	fmt.Printf("  exporter metrics   %s\n", metricsURL)
	for i, u := range tb.PrometheusURLs {
		fmt.Printf("  Prometheus r%d      %s\n", i, u)
	}
	fmt.Printf("  Thanos Query       %s   (try: upgradeguard_node_drainable == 0)\n", tb.ThanosQueryURL)
	fmt.Printf("  kubeconfig         %s\n", tb.Kubeconfig)
	fmt.Println()
	summarize(mfs)
	fmt.Println()

	d := &demo{tb: tb, bin: bin, awsURL: aws.URL(), awsEnv: awsEnv, fault: fault}
	if err := d.policy(); err != nil {
		return err
	}
	if err := d.gateVerdicts(ctx, acct, pinned); err != nil {
		return err
	}
	if err := d.startHold(); err != nil {
		return err
	}
	if err := d.roll(ctx); err != nil {
		fmt.Printf("\nThe roll did not complete: %v\n", err)
	}
	fmt.Println()
	fmt.Println("Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return nil
}

// workloads are the demo's Deployments, set by createCluster.
var workloads []testbed.Workload

// region is the demo cluster's AWS region; zones are its zones.
const region = "eu-west-1"

var zones = []string{region + "a", region + "b", region + "c"}

// createCluster makes the fake AWS account of the cluster (a tagged subnet
// per zone, one nearly full, and an Auto Scaling group per node group) and
// a kwok node for every instance the groups launch, then the workloads.
func createCluster(ctx context.Context, tb *testbed.Testbed, acct *awsfake.Account) (string, error) {
	tags := map[string]string{"kubernetes.io/cluster/demo": "owned"}
	var subnets []string
	for i, zone := range zones {
		cidr := fmt.Sprintf("10.1.%d.0/24", i)
		if i == 2 {
			cidr = "10.1.2.0/28" // 11 usable addresses: too few for a new node
		}
		sub, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: cidr, AZ: zone, Tags: tags})
		if err != nil {
			return "", err
		}
		subnets = append(subnets, sub.ID)
	}
	backed := tb.BackInstances(ctx, acct, nil)
	var names, blue []string
	for _, group := range []string{"nodes-blue", "nodes-green"} {
		instanceType := map[string]string{"nodes-blue": "m5.large", "nodes-green": "m6i.large"}[group]
		lt, err := acct.AddLaunchTemplate(group, awsfake.LaunchTemplateData{InstanceType: instanceType,
			BlockDevices: []awsfake.BlockDevice{{DeviceName: "/dev/xvda", VolumeType: "gp3", SizeGiB: 100}}}, nil)
		if err != nil {
			return "", err
		}
		g, err := acct.AddASG(awsfake.ASGSpec{Name: group, LaunchTemplate: lt.ID, Min: 6, Max: 12, Desired: 6,
			Subnets: subnets, Tags: tags})
		if err != nil {
			return "", err
		}
		for _, id := range g.Instances {
			if n, ok := backed.Node(id); ok {
				names = append(names, n)
				if group == "nodes-blue" {
					blue = append(blue, n)
				}
			}
		}
	}
	if err := backed.Err(); err != nil {
		return "", err
	}
	if len(names) != 12 {
		return "", fmt.Errorf("%d of 12 instances became nodes", len(names))
	}
	// The blocked workload is pinned to a node of nodes-blue, so that the
	// roll of nodes-green below is not stopped by it.
	sort.Strings(blue)
	pinned := blue[0]
	logf("fake AWS: a subnet per zone, 2 Auto Scaling groups; their 12 instances are kwok nodes in 3 zones")

	one, zero, half := intstr.FromInt32(1), intstr.FromInt32(0), intstr.FromString("50%")
	green := map[string]string{testbed.DefaultNodeGroupLabel: "nodes-green"}
	workloads = []testbed.Workload{
		// On nodes-green, which the demo rolls.
		{Namespace: "shop", Name: "web", Replicas: 6, MaxUnavailable: &one, NodeSelector: green},
		{Namespace: "shop", Name: "api", Replicas: 4, MinAvailable: &half, NodeSelector: green},
		// The blocking one: maxUnavailable 0 can never allow an eviction.
		{Namespace: "payments", Name: "ledger", Replicas: 2, MaxUnavailable: &zero,
			NodeSelector: map[string]string{corev1.LabelHostname: pinned}},
		{Namespace: "batch", Name: "scratch", Replicas: 2, EmptyDir: true},
	}
	for _, w := range workloads {
		if err := tb.CreateWorkload(ctx, w); err != nil {
			return "", err
		}
	}
	logf("created workloads shop/web, shop/api, payments/ledger (PDB maxUnavailable 0, pinned to %s), batch/scratch (emptyDir)", pinned)
	return pinned, nil
}

// summarize prints what the exporter sees, as an operator would read it
// before an upgrade.
func summarize(mfs scrape.Families) {
	fmt.Println("What the exporter sees:")
	ready, total := 0, 0
	maxAge, maxAgeNode := 0.0, ""
	for _, s := range mfs.Samples("upgradeguard_node_ready", nil) {
		total++
		ready += int(s.Value)
	}
	for _, s := range mfs.Samples("upgradeguard_node_heartbeat_age_seconds", nil) {
		if s.Value > maxAge {
			maxAge, maxAgeNode = s.Value, s.Labels["node"]
		}
	}
	fmt.Printf("  nodes ready: %d/%d; oldest kubelet heartbeat %.0fs (%s)\n", ready, total, maxAge, maxAgeNode)

	var pdbs []string
	for _, s := range mfs.Samples("upgradeguard_pdb_disruptions_allowed", nil) {
		key := map[string]string{"namespace": s.Labels["namespace"], "pdb": s.Labels["pdb"]}
		line := fmt.Sprintf("  PDB %s/%s: %.0f disruption(s) allowed", key["namespace"], key["pdb"], s.Value)
		if v, _ := mfs.Value("upgradeguard_pdb_unsatisfiable", key); v == 1 {
			line += ", UNSATISFIABLE: no eviction can ever pass"
		}
		pdbs = append(pdbs, line)
	}
	sort.Strings(pdbs)
	fmt.Println(strings.Join(pdbs, "\n"))

	var blocked []string
	for _, s := range mfs.Samples("upgradeguard_node_drain_blocked_pods", nil) {
		blocked = append(blocked, fmt.Sprintf("  node %s: drain blocked, %.0f pod(s) of PDB %s/%s would be refused",
			s.Labels["node"], s.Value, s.Labels["namespace"], s.Labels["pdb"]))
	}
	sort.Strings(blocked)
	if len(blocked) == 0 {
		fmt.Println("  every node is drainable")
	} else {
		fmt.Println(strings.Join(blocked, "\n"))
	}
	for _, z := range mfs.Samples("upgradeguard_zone_available_ips", nil) {
		line := fmt.Sprintf("  zone %s: %.0f free IPs in the cluster subnets", z.Labels["zone"], z.Value)
		for _, g := range mfs.Samples("upgradeguard_aws_asg_surge_ips", nil) {
			if g.Value > z.Value {
				line += fmt.Sprintf(", fewer than the %.0f a new node of %s takes at start: a surge there would fail", g.Value, g.Labels["asg"])
				break
			}
		}
		fmt.Println(line)
	}
	for _, l := range mfs.Samples("upgradeguard_aws_quota_surge_demand", nil) {
		key := map[string]string{"service": l.Labels["service"], "quota_code": l.Labels["quota_code"]}
		limit, okL := mfs.Value("upgradeguard_aws_quota_limit", key)
		usage, okU := mfs.Value("upgradeguard_aws_quota_usage", key)
		if okL && okU {
			fmt.Printf("  AWS quota %s (%s): %.4g used of %.4g, a node replacement needs %.4g more\n",
				l.Labels["quota_name"], l.Labels["quota_code"], usage, limit, l.Value)
		}
	}
	var local []string
	for _, s := range mfs.Samples("upgradeguard_node_local_storage_pods", nil) {
		if s.Value > 0 {
			local = append(local, s.Labels["node"])
		}
	}
	sort.Strings(local)
	if len(local) > 0 {
		fmt.Printf("  nodes with emptyDir pods (their data is lost on drain): %s\n", strings.Join(local, ", "))
	}
}
