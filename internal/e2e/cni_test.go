package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// eniConfigCRD is the VPC CNI's ENIConfig CRD as its chart installs it
// (group, version, names, scope), with a schema that keeps every field.
var eniConfigCRD = map[string]any{
	"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
	"metadata": map[string]any{"name": "eniconfigs.crd.k8s.amazonaws.com"},
	"spec": map[string]any{
		"group": "crd.k8s.amazonaws.com", "scope": "Cluster",
		"names": map[string]any{"plural": "eniconfigs", "singular": "eniconfig", "kind": "ENIConfig", "listKind": "ENIConfigList"},
		"versions": []any{map[string]any{
			"name": "v1alpha1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
		}},
	},
}

// cniGatePolicy is the gate e2e's policy without the availability check:
// this cluster runs no Service, and the check has its own test.
const cniGatePolicy = gatePolicy + `
availability:
  enabled: false
`

// TestGateVPCCNI: a cluster whose VPC CNI (an aws-node DaemonSet in
// kube-system) runs with custom networking and prefix delegation. Zone a's
// pods use a roomy pod subnet; zone b's node subnet is nearly full and its
// pod subnet is fragmented: 237 free addresses, no free aligned /28. The gate
// answers UNKNOWN while no aws-node target is scraped, then GO for a zone-a
// node, WAIT for a zone-b node (no /28 for a new node's pods; its 3 free node
// addresses are enough for the node's own), and GO once a block is freed.
func TestGateVPCCNI(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "gate-rules.yml")
	if err := os.WriteFile(rules, []byte(gateRules), 0o644); err != nil {
		t.Fatal(err)
	}
	// The bundle's watchdog, which the gate requires by default.
	watchdog := filepath.Join(t.TempDir(), "watchdog-rules.yml")
	if err := os.WriteFile(watchdog, []byte(watchdogRules(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules, watchdog}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(tb.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// The fake AWS account: a tagged node subnet per zone, an untagged pod
	// subnet per zone.
	aws, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aws.Close() })
	acct := aws.Account()
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	addSubnet := func(cidr, zone string, tags map[string]string) awsfake.Subnet {
		t.Helper()
		s, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: cidr, AZ: zone, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	nodeA, nodeB := addSubnet("10.1.0.0/24", "eu-west-1a", tags), addSubnet("10.1.1.0/24", "eu-west-1b", tags)
	podA, podB := addSubnet("10.2.0.0/20", "eu-west-1a", nil), addSubnet("10.2.16.0/24", "eu-west-1b", nil)
	// One address in each /28 block 1..14 of zone b's pod subnet (blocks 0
	// and 15 hold AWS's own): 251 - 14 = 237 free addresses, 0 free blocks.
	var scattered []string
	for k := 1; k <= 14; k++ {
		scattered = append(scattered, fmt.Sprintf("10.2.16.%d", 16*k+4))
	}
	holder, err := acct.AddENI(awsfake.ENISpec{Subnet: podB.ID, PrivateIPs: scattered, Description: "an appliance's interface"})
	if err != nil {
		t.Fatal(err)
	}

	// The ENIConfig CRD and one ENIConfig per zone, named by zone.
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: eniConfigCRD}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for zone, sub := range map[string]string{"eu-west-1a": podA.ID, "eu-west-1b": podB.ID} {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
			"metadata": map[string]any{"name": zone},
			"spec":     map[string]any{"subnet": sub, "securityGroups": []any{"sg-0123456789abcdef0"}},
		}}
		err := testbed.WaitFor(ctx, 30*time.Second, "the ENIConfig CRD served", func(ctx context.Context) (bool, error) {
			_, err := dyn.Resource(kube.ENIConfigResource).Create(ctx, obj, metav1.CreateOptions{})
			return err == nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Nodes: an Auto Scaling group of 4 m5.large over both zones.
	backed := tb.BackInstances(ctx, acct, nil)
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	group, err := acct.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: 4, Max: 8, Desired: 4,
		Subnets: []string{nodeA.ID, nodeB.ID}, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	zoneOf := map[string]string{}
	for _, id := range group.Instances {
		inst, _ := acct.Instance(id)
		if n, ok := backed.Node(id); ok {
			zoneOf[n] = inst.AZ
		}
	}
	if err := backed.Err(); err != nil || len(zoneOf) != 4 {
		t.Fatalf("creating the nodes: %v (%v)", err, zoneOf)
	}
	var inA, inB string
	for _, n := range sortedKeys(zoneOf) {
		if err := testbed.WaitFor(ctx, 2*time.Minute, n+" Ready", tb.NodeReady(n, corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
		switch zoneOf[n] {
		case "eu-west-1a":
			inA = n
		case "eu-west-1b":
			inB = n
		}
	}
	if inA == "" || inB == "" {
		t.Fatalf("no node in each zone: %v", zoneOf)
	}
	// Zone b's node subnet nearly full: 3 free addresses, fewer than the 18
	// a new node takes in all but more than the 1 it takes there.
	if s, _ := acct.Subnet(nodeB.ID); s.AvailableIPs > 3 {
		if _, err := acct.AddENI(awsfake.ENISpec{Subnet: nodeB.ID, SecondaryIPs: s.AvailableIPs - 4, Description: "a load balancer's interface"}); err != nil {
			t.Fatal(err)
		}
	}

	// The VPC CNI: aws-node on every node, custom networking and prefix
	// delegation on, one warm prefix.
	always := corev1.Toleration{Operator: corev1.TolerationOpExists}
	labels := map[string]string{"k8s-app": "aws-node"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: kube.AWSNodeName, Namespace: kube.AWSNodeNamespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{always}, HostNetwork: true, Containers: []corev1.Container{{
					Name: kube.AWSNodeContainer, Image: "aws-node",
					Env: []corev1.EnvVar{
						{Name: "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", Value: "true"},
						{Name: "ENI_CONFIG_LABEL_DEF", Value: corev1.LabelTopologyZone},
						{Name: "ENABLE_PREFIX_DELEGATION", Value: "true"},
						{Name: "WARM_PREFIX_TARGET", Value: "1"},
						{Name: "MY_NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
					},
				}}},
			},
		},
	}
	if _, err := tb.Client.AppsV1().DaemonSets(kube.AWSNodeNamespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	url := "http://" + startExporter(t, tb, bin, aws.URL(), "--collector.cni.interval=5s", "--collector.awsquota.usage-interval=5s")

	// What the exporter sees, as the gate will read it: the DaemonSet's
	// settings and nodes, both roles and the /28 blocks.
	err = testbed.WaitFor(ctx, 2*time.Minute, "the exporter's VPC CNI series", func(ctx context.Context) (bool, error) {
		mfs, err := scrape.Get(ctx, url+"/metrics")
		if err != nil {
			return false, err
		}
		want := map[string]float64{}
		got := map[string]float64{}
		check := func(key string, v float64, ok bool, w float64) {
			want[key] = w
			if ok {
				got[key] = v
			}
		}
		v, ok := mfs.Value("upgradeguard_vpc_cni_nodes", nil)
		check("vpc_cni_nodes", v, ok, 4)
		v, ok = mfs.Value("upgradeguard_zone_available_prefixes", map[string]string{"zone": "eu-west-1b", "role": "pod"})
		check("zone b pod /28", v, ok, 0)
		v, ok = mfs.Value("upgradeguard_zone_available_ips", map[string]string{"zone": "eu-west-1b", "role": "pod"})
		check("zone b pod ips", v, ok, 237)
		v, ok = mfs.Value("upgradeguard_zone_available_ips", map[string]string{"zone": "eu-west-1b", "role": "node"})
		check("zone b node ips", v, ok, 3)
		v, ok = mfs.Value("upgradeguard_aws_asg_surge_prefixes", map[string]string{"asg": "nodes"})
		check("surge prefixes", v, ok, 1)
		v, ok = mfs.Value("upgradeguard_aws_asg_surge_pod_ips", map[string]string{"asg": "nodes"})
		check("surge pod ips", v, ok, 17)
		v, ok = mfs.Value("upgradeguard_aws_asg_surge_ips", map[string]string{"asg": "nodes"})
		check("surge ips", v, ok, 18)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return false, fmt.Errorf("got %v, want %v", got, want)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	policy, err := gate.ParsePolicy([]byte(cniGatePolicy))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{URL: tb.ThanosQueryURL, QueryTimeout: 10 * time.Second}, policy,
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	// ipsRow waits until the capacity/ips row of node reaches status with
	// why in its reason, and the verdict is not GO unless it passes.
	ipsRow := func(t *testing.T, what, node string, status gate.Status, why string) gate.Evaluation {
		t.Helper()
		var last gate.Evaluation
		err := testbed.WaitFor(ctx, 3*time.Minute, what, func(ctx context.Context) (bool, error) {
			e, err := g.Evaluate(ctx, node)
			if err != nil {
				return false, err
			}
			last = e
			for _, c := range e.Checks {
				if c.Name != "capacity/ips" {
					continue
				}
				if c.Status != status || !strings.Contains(c.Why, why) {
					return false, fmt.Errorf("capacity/ips %s %q", c.Status, c.Why)
				}
				if status != gate.Pass && e.Verdict == gate.GO {
					return false, fmt.Errorf("verdict GO with capacity/ips %s", c.Status)
				}
				return true, nil
			}
			return false, fmt.Errorf("no capacity/ips row")
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, table(last))
		}
		t.Logf("%s:\n%s", what, table(last))
		return last
	}

	waitGO := func(t *testing.T, node string) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
		defer wcancel()
		e, err := gate.Wait(wctx, g, node, gate.WaitOptions{Consecutive: 2, Interval: time.Second, Timeout: 3 * time.Minute})
		if err != nil {
			t.Fatalf("no GO for %s: %v\n%s", node, err, table(e))
		}
	}

	t.Run("VPC CNI nodes but no aws-node target: UNKNOWN", func(t *testing.T) {
		ipsRow(t, "UNKNOWN without aws-node metrics", inA, gate.Unknown, "no aws-node target is up")
	})

	// From now on Prometheus scrapes an aws-node target.
	_, stop, err := tb.ServeGauge("aws-node", "awscni_total_ip_addresses")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	t.Run("a zone with a roomy pod subnet: GO", func(t *testing.T) {
		ipsRow(t, "capacity/ips passes in zone a", inA, gate.Pass, "")
		waitGO(t, inA)
	})

	t.Run("the fragmented pod subnet: no /28 for a new node's pods", func(t *testing.T) {
		// 237 free addresses in the pod subnet and 3 in the node subnet, as
		// many as a new node takes there (1): only the prefixes are short.
		e := ipsRow(t, "capacity/ips fails in zone b", inB, gate.Fail, "eu-west-1b has 0 /28 prefixes free, needs 1")
		if r := row(e, "capacity/ips"); strings.Contains(r.Why, "addresses free") {
			t.Errorf("addresses reported short: %s", r.Why)
		}
		if e.Verdict != gate.WAIT {
			t.Errorf("verdict %s, want WAIT", e.Verdict)
		}
	})

	t.Run("a /28 freed: GO", func(t *testing.T) {
		// The appliance gives up the address of block 14 (10.2.16.228).
		if err := acct.DeleteENI(holder.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := acct.AddENI(awsfake.ENISpec{Subnet: podB.ID, PrivateIPs: scattered[:13]}); err != nil {
			t.Fatal(err)
		}
		ipsRow(t, "capacity/ips passes in zone b", inB, gate.Pass, "")
		waitGO(t, inB)
	})
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// row returns the named check of e.
func row(e gate.Evaluation, name string) gate.CheckResult {
	for _, c := range e.Checks {
		if c.Name == name {
			return c
		}
	}
	return gate.CheckResult{}
}
