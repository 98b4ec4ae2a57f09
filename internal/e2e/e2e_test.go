// Package e2e runs the exporter binary against the testbed's real
// kube-apiserver, controllers, kwok nodes, Prometheus and Thanos.
package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startExporter runs the built exporter against the testbed, scraped by
// both Prometheus replicas as job "upgradeguard", and returns its address.
// With awsURL its AWS collectors run too, against the fake AWS, for the
// cluster "testbed" in eu-west-1. extra are more flags.
func startExporter(t *testing.T, tb *testbed.Testbed, bin, awsURL string, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	args := []string{bin, "exporter", "--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr}
	var env []string
	if awsURL != "" {
		args = append(args, "--collector.cni", "--collector.awsquota", "--aws.region", "eu-west-1", "--aws.endpoint-url", awsURL, "--aws.cluster-name", "testbed")
		env = []string{
			"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey,
			"AWS_EC2_METADATA_DISABLED=true",
		}
	}
	if _, err := tb.StartProcess("upgradeguard-exporter", append(args, extra...), env); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetScrapeTargets("upgradeguard", []string{addr}); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestExporterAgainstRealCluster(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// 20 nodes in 3 zones and 2 node groups.
	zones := []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}
	var names []string
	for i := range 20 {
		group := "nodes-blue"
		if i%2 == 1 {
			group = "nodes-green"
		}
		n := testbed.Node{
			Name:         fmt.Sprintf("node-%02d", i),
			Zone:         zones[i%3],
			InstanceType: "m5.large",
			NodeGroup:    group,
		}
		if err := tb.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n.Name)
	}
	// Deployments under PDBs, pinned to known nodes so the drain verdicts
	// can be checked pod by pod.
	zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
	workloads := []testbed.Workload{
		{Namespace: "shop", Name: "frozen", Replicas: 2, MaxUnavailable: &zero,
			NodeSelector: map[string]string{corev1.LabelHostname: "node-03"}},
		{Namespace: "shop", Name: "web", Replicas: 3, MaxUnavailable: &one,
			NodeSelector: map[string]string{corev1.LabelHostname: "node-04"}},
		{Namespace: "data", Name: "cache", Replicas: 4, MinAvailable: ptr(intstr.FromString("50%"))},
	}
	for _, w := range workloads {
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}

	// The fake AWS account of the cluster: a tagged subnet per zone.
	aws, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aws.Close() })
	for i, zone := range zones {
		if _, err := aws.Account().AddSubnet(awsfake.SubnetSpec{
			CIDR: fmt.Sprintf("10.1.%d.0/24", i*32), AZ: zone,
			Tags: map[string]string{"kubernetes.io/cluster/testbed": "owned"},
		}); err != nil {
			t.Fatal(err)
		}
	}

	// A third node group whose nodes are the instances of a fake Auto
	// Scaling group with a mixed instances policy (m5.large or c5.xlarge,
	// half spot above the base), as on a real cluster: the cni collector
	// finds them by provider ID, the awsquota collector projects their surge.
	lt, err := aws.Account().AddLaunchTemplate("nodes-aws", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	backed := tb.BackInstances(ctx, aws.Account(), nil)
	half := int32(50)
	group, err := aws.Account().AddASG(awsfake.ASGSpec{
		Name: "nodes-aws", LaunchTemplate: lt.ID, Min: 3, Max: 6, Desired: 3, Subnets: subnetIDs(t, aws.Account()),
		// kops names the node group in a tag, and its nodes in a label.
		Tags: map[string]string{"kubernetes.io/cluster/testbed": "owned", "kops.k8s.io/instancegroup": "nodes-aws"},
		MixedInstances: &awsfake.MixedInstances{
			InstanceTypes: []string{"m5.large", "c5.xlarge"}, OnDemandPercentageAboveBaseCapacity: &half,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}
	var awsNodes []string
	for _, id := range group.Instances {
		name, ok := backed.Node(id)
		if !ok {
			t.Fatalf("instance %s of nodes-aws has no node", id)
		}
		awsNodes = append(awsNodes, name)
	}
	names = append(names, awsNodes...)

	// Usage (and the Auto Scaling groups' instances) every 15 s, so that a
	// change in AWS shows within the test's patience.
	addr := startExporter(t, tb, bin, aws.URL(), "--log.level", "debug", "--collector.awsquota.usage-interval", "15s")
	metricsURL := "http://" + addr + "/metrics"

	t.Run("every node is ready and seen once through Thanos", func(t *testing.T) {
		err := testbed.WaitFor(ctx, 3*time.Minute, "Thanos Query to return upgradeguard_node_ready == 1 for all 20 nodes, deduplicated", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, "upgradeguard_node_ready == 1", true)
			if err != nil {
				return false, err
			}
			if len(r) != len(names) {
				return false, fmt.Errorf("%d series, want %d", len(r), len(names))
			}
			for _, s := range r {
				if _, ok := s.Metric["replica"]; ok {
					return false, fmt.Errorf("deduplicated series still has a replica label: %v", s.Metric)
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Without deduplication, each replica's copy is there.
		err = testbed.WaitFor(ctx, time.Minute, "Thanos Query to return both replicas' series with dedup=false", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, "upgradeguard_node_ready", false)
			if err != nil {
				return false, err
			}
			return len(r) == 2*len(names), fmt.Errorf("%d series, want %d", len(r), 2*len(names))
		})
		if err != nil {
			t.Error(err)
		}
		r, err := tb.QueryThanos(ctx, `count by (nodegroup, zone) (upgradeguard_node_info)`, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) != 9 {
			t.Errorf("node_info: %d (nodegroup, zone) pairs, want 9: %+v", len(r), r)
		}
	})

	t.Run("AWS collectors through the real SDK against the fake AWS", func(t *testing.T) {
		standard := map[string]string{"service": "ec2", "quota_code": "L-1216C47A"}
		err := testbed.WaitFor(ctx, time.Minute, "the AWS collectors' first refresh", func(ctx context.Context) (bool, error) {
			mfs, err := scrape.Get(ctx, metricsURL)
			if err != nil {
				return false, err
			}
			subnets := mfs.Samples("upgradeguard_subnet_usable_ips", nil)
			capacity := mfs.Samples("upgradeguard_node_ip_capacity", nil)
			cniOK, _ := mfs.Value("upgradeguard_collector_success", map[string]string{"collector": "cni"})
			quotaOK, _ := mfs.Value("upgradeguard_collector_success", map[string]string{"collector": "awsquota"})
			_, limit := mfs.Value("upgradeguard_aws_quota_limit", standard)
			_, usage := mfs.Value("upgradeguard_aws_quota_usage", standard)
			return len(subnets) == 3 && len(capacity) == len(names) && cniOK == 1 && quotaOK == 1 && limit && usage,
				fmt.Errorf("%d subnets, %d nodes with capacity, cni success %v, awsquota success %v, standard vCPU limit %v usage %v",
					len(subnets), len(capacity), cniOK, quotaOK, limit, usage)
		})
		if err != nil {
			t.Fatal(err)
		}
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range mfs.Samples("upgradeguard_subnet_usable_ips", nil) {
			if s.Value != 251 {
				t.Errorf("usable IPs of /24 %v = %v, want 251", s.Labels, s.Value)
			}
		}
		// One instance of nodes-aws per zone holds one address.
		for _, zone := range zones {
			if v, ok := mfs.Value("upgradeguard_zone_available_ips", map[string]string{"zone": zone}); !ok || v != 250 {
				t.Errorf("available IPs in %s = %v (%v), want 250", zone, v, ok)
			}
		}
		// The instance-backed nodes: capacity from their instance's type.
		for _, n := range awsNodes {
			if v, ok := mfs.Value("upgradeguard_node_ip_capacity", map[string]string{"node": n}); !ok || (v != 27 && v != 56) {
				t.Errorf("IP capacity of instance-backed node %s = %v (%v), want 27 (m5.large) or 56 (c5.xlarge)", n, v, ok)
			}
		}
		// Surge of nodes-aws: its worst override, c5.xlarge (4 vCPUs, 2
		// ENIs of 15 addresses at start), on-demand or spot.
		for quota, want := range map[string]float64{"L-1216C47A": 4, "L-34B43A08": 4, "L-DF5E4CA3": 2} {
			if v, ok := mfs.Value("upgradeguard_aws_quota_surge_demand", map[string]string{"quota_code": quota}); !ok || v != want {
				t.Errorf("surge demand of %s = %v (%v), want %v", quota, v, ok, want)
			}
		}
		if v, ok := mfs.Value("upgradeguard_aws_asg_surge_ips", map[string]string{"asg": "nodes-aws"}); !ok || v != 30 {
			t.Errorf("surge addresses of nodes-aws = %v (%v), want 30", v, ok)
		}
		// m5.large: 3 ENIs x (10 addresses - 1), as DescribeInstanceTypes says.
		if v, _ := mfs.Value("upgradeguard_node_ip_capacity", map[string]string{"node": "node-00"}); v != 27 {
			t.Errorf("IP capacity of an m5.large node = %v, want 27", v)
		}
		if v, _ := mfs.Value("upgradeguard_aws_api_requests_total", map[string]string{"service": "EC2", "operation": "DescribeSubnets", "code": "ok"}); v < 1 {
			t.Errorf("DescribeSubnets requests counted: %v", v)
		}
		if _, ok := mfs.Value("upgradeguard_aws_refresh_last_success_timestamp_seconds", map[string]string{"collector": "cni", "region": "eu-west-1"}); !ok {
			t.Error("no last-success timestamp for the cni refresh")
		}
	})

	t.Run("Service endpoints and workload replicas agree with the API server", func(t *testing.T) {
		if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "avail", Name: "api", Replicas: 2, Service: true}); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"app": "db"}
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: "avail", Name: "db"},
			Spec: appsv1.StatefulSetSpec{
				Replicas: ptr(int32(1)), ServiceName: "db",
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
					Tolerations: []corev1.Toleration{{Key: testbed.KwokAnnotation, Operator: corev1.TolerationOpExists}},
					Containers:  []corev1.Container{{Name: "db", Image: "db"}},
				}},
			},
		}
		if _, err := tb.Client.AppsV1().StatefulSets("avail").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		api := map[string]string{"namespace": "avail", "service": "api"}
		with := func(m map[string]string, k, v string) map[string]string {
			out := map[string]string{k: v}
			for k, v := range m {
				out[k] = v
			}
			return out
		}
		err := testbed.WaitFor(ctx, 2*time.Minute, "the exporter to show 2 ready endpoints of avail/api and the workloads available", func(ctx context.Context) (bool, error) {
			mfs, err := scrape.Get(ctx, metricsURL)
			if err != nil {
				return false, err
			}
			ready, _ := mfs.Value("upgradeguard_service_endpoints", with(api, "ready", "true"))
			avail, _ := mfs.Value("upgradeguard_deployment_status_replicas_available", map[string]string{"namespace": "avail", "deployment": "api"})
			maxUnavail, _ := mfs.Value("upgradeguard_deployment_strategy_max_unavailable", map[string]string{"namespace": "avail", "deployment": "api"})
			db, _ := mfs.Value("upgradeguard_statefulset_status_replicas_available", map[string]string{"namespace": "avail", "statefulset": "db"})
			dbMax, _ := mfs.Value("upgradeguard_statefulset_strategy_max_unavailable", map[string]string{"namespace": "avail", "statefulset": "db"})
			ok, _ := mfs.Value("upgradeguard_collector_success", map[string]string{"collector": "workloads"})
			// The Deployment's defaults (25% of 2: 0 unavailable, 1 surge)
			// and the StatefulSet's (1), as the API server filled them in.
			return ready == 2 && avail == 2 && maxUnavail == 0 && db == 1 && dbMax == 1 && ok == 1, fmt.Errorf(
				"ready endpoints %v, api available %v (max unavailable %v), db available %v (max unavailable %v), success %v", ready, avail, maxUnavail, db, dbMax, ok)
		})
		if err != nil {
			t.Fatal(err)
		}
		// The same numbers as the API server's objects.
		dep, err := tb.Client.AppsV1().Deployments("avail").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]int32{
			"upgradeguard_deployment_spec_replicas":             *dep.Spec.Replicas,
			"upgradeguard_deployment_status_replicas_ready":     dep.Status.ReadyReplicas,
			"upgradeguard_deployment_status_replicas_updated":   dep.Status.UpdatedReplicas,
			"upgradeguard_deployment_status_replicas_available": dep.Status.AvailableReplicas,
		} {
			if v, ok := mfs.Value(name, map[string]string{"namespace": "avail", "deployment": "api"}); !ok || v != float64(want) {
				t.Errorf("%s = %v (%v), the API server says %d", name, v, ok, want)
			}
		}
		// Without pods the Service keeps its series, at 0 ready endpoints.
		if _, err := tb.Client.AppsV1().Deployments("avail").Patch(ctx, "api", types.MergePatchType,
			[]byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		err = testbed.WaitFor(ctx, 2*time.Minute, "avail/api at 0 ready endpoints", func(ctx context.Context) (bool, error) {
			mfs, err := scrape.Get(ctx, metricsURL)
			if err != nil {
				return false, err
			}
			ready, okR := mfs.Value("upgradeguard_service_endpoints", with(api, "ready", "true"))
			notReady, okN := mfs.Value("upgradeguard_service_endpoints", with(api, "ready", "false"))
			return okR && okN && ready == 0 && notReady == 0, fmt.Errorf("ready %v (%v), not ready %v (%v)", ready, okR, notReady, okN)
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("drain verdicts agree with the Eviction API", func(t *testing.T) {
		// Wait until the disruption controller has computed both PDBs and
		// the exporter shows the verdicts.
		err := testbed.WaitFor(ctx, 2*time.Minute, "exporter to show node-03 blocked by frozen and two of node-04's web pods blocked", func(ctx context.Context) (bool, error) {
			mfs, err := scrape.Get(ctx, metricsURL)
			if err != nil {
				return false, err
			}
			d3, ok3 := mfs.Value("upgradeguard_node_drainable", map[string]string{"node": "node-03"})
			blocked, okb := mfs.Value("upgradeguard_node_drain_blocked_pods", map[string]string{"node": "node-03", "namespace": "shop", "pdb": "frozen"})
			allowed, oka := mfs.Value("upgradeguard_pdb_disruptions_allowed", map[string]string{"namespace": "shop", "pdb": "web"})
			d4, ok4 := mfs.Value("upgradeguard_node_drain_blocked_pods", map[string]string{"node": "node-04", "pdb": "web"})
			evictable4, _ := mfs.Value("upgradeguard_node_evictable_pods", map[string]string{"node": "node-04"})
			if !ok3 || !okb || !oka {
				return false, fmt.Errorf("series missing: drainable=%v blocked=%v allowed=%v", ok3, okb, oka)
			}
			// node-04 holds the 3 web pods (and maybe a cache pod), of which
			// the PDB allows one disruption: two are blocked until the first
			// is replaced.
			return d3 == 0 && blocked == 2 && allowed == 1 && ok4 && d4 == 2 && evictable4 >= 3, fmt.Errorf(
				"node-03 drainable=%v blocked=%v; web allowed=%v; node-04 blocked=%v evictable=%v", d3, blocked, allowed, d4, evictable4)
		})
		if err != nil {
			t.Fatal(err)
		}
		pods := func(app, node string) []corev1.Pod {
			list, err := tb.Client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
			if err != nil {
				t.Fatal(err)
			}
			var out []corev1.Pod
			for _, p := range list.Items {
				if p.Spec.NodeName == node && p.DeletionTimestamp == nil {
					out = append(out, p)
				}
			}
			return out
		}
		evict := func(p corev1.Pod) error {
			return tb.Client.CoreV1().Pods(p.Namespace).EvictV1(ctx, &policyv1.Eviction{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			})
		}
		for _, p := range pods("frozen", "node-03") {
			err := evict(p)
			if !apierrors.IsTooManyRequests(err) {
				t.Errorf("evicting %s under a maxUnavailable 0 PDB: got %v, want 429 Too Many Requests, as the exporter said", p.Name, err)
			}
		}
		web := pods("web", "node-04")
		if len(web) != 3 {
			t.Fatalf("web pods on node-04: %d, want 3", len(web))
		}
		// Drain as kubectl does: cordon first. The evicted pod's replacement
		// (pinned to node-04) then stays Pending, so the budget stays spent;
		// without the cordon it can be Ready again before the next eviction.
		if _, err := tb.Client.CoreV1().Nodes().Patch(ctx, "node-04", types.MergePatchType,
			[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := evict(web[0]); err != nil {
			t.Errorf("evicting %s (PDB allows 1): %v; the exporter said one pod is evictable", web[0].Name, err)
		}
		if err := evict(web[1]); !apierrors.IsTooManyRequests(err) {
			t.Errorf("evicting a second web pod at once: got %v, want 429, as the exporter said", err)
		}
	})

	// The exporter's side: drain refusals, node churn, clock skew, Auto
	// Scaling instances without a node.
	t.Run("why a drain is refused: two PDBs, a PDB status behind its spec", func(t *testing.T) {
		checkDrainReasons(ctx, t, tb, metricsURL, "node-05")
	})
	t.Run("nodes on their way out: taints and deletion", func(t *testing.T) {
		checkNodesOnTheirWayOut(ctx, t, tb, metricsURL, "node-09")
	})
	t.Run("clock-skewed kubelets: heartbeat age on the exporter's clock", func(t *testing.T) {
		checkClockSkew(ctx, t, tb, metricsURL)
	})
	t.Run("Auto Scaling group instances by lifecycle state, joined with their nodes", func(t *testing.T) {
		checkGroupInstances(ctx, t, tb, aws.Account(), backed, metricsURL)
	})

	t.Run("a stopped heartbeat shows before the node controller reacts", func(t *testing.T) {
		const victim = "node-07"
		if err := tb.StopHeartbeat(ctx, victim); err != nil {
			t.Fatal(err)
		}
		// The exporter must see the heartbeat overdue while the node is
		// still Ready: that is the early warning.
		err := testbed.WaitFor(ctx, 2*time.Minute, "heartbeat age of "+victim+" past its lease duration while still Ready", func(ctx context.Context) (bool, error) {
			mfs, err := scrape.Get(ctx, metricsURL)
			if err != nil {
				return false, err
			}
			sel := map[string]string{"node": victim}
			age, ok1 := mfs.Value("upgradeguard_node_heartbeat_age_seconds", sel)
			dur, ok2 := mfs.Value("upgradeguard_node_lease_duration_seconds", sel)
			ready, ok3 := mfs.Value("upgradeguard_node_ready", sel)
			if !ok1 || !ok2 || !ok3 {
				return false, fmt.Errorf("series missing")
			}
			if ready != 1 {
				return false, fmt.Errorf("node already not ready (age %.0fs, lease %.0fs): the exporter did not see it first", age, dur)
			}
			return age > dur, fmt.Errorf("age %.0fs, lease %.0fs", age, dur)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = testbed.WaitFor(ctx, 3*time.Minute, "the node controller to mark "+victim+" not ready", func(ctx context.Context) (bool, error) {
			mfs, err := scrape.Get(ctx, metricsURL)
			if err != nil {
				return false, err
			}
			ready, ok := mfs.Value("upgradeguard_node_ready", map[string]string{"node": victim})
			return ok && ready == 0, fmt.Errorf("ready=%v", ready)
		})
		if err != nil {
			t.Fatal(err)
		}
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionUnknown {
				t.Errorf("API server says Ready=%s, want Unknown", c.Status)
			}
		}
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := mfs.Value("upgradeguard_node_ready_transitions_total", map[string]string{"node": victim}); v < 1 {
			t.Errorf("ready transitions of %s = %v, want >= 1", victim, v)
		}
		for _, c := range []string{"nodes", "pdb", "workloads"} {
			if v, _ := mfs.Value("upgradeguard_collector_success", map[string]string{"collector": c}); v != 1 {
				t.Errorf("collector %s success = %v", c, v)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

// subnetIDs lists an account's subnets.
func subnetIDs(t *testing.T, a *awsfake.Account) []string {
	t.Helper()
	var ids []string
	for _, s := range a.Subnets() {
		ids = append(ids, s.ID)
	}
	if len(ids) == 0 {
		t.Fatal("no subnets")
	}
	return ids
}
