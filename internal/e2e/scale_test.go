//go:build scale

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/pager"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestScale is `make bench-scale`, the scale scenarios: 500 kwok nodes with
// 10,000 pods and 500 PDBs, then 2,000 nodes with 40,000 pods and 2,000
// PDBs. The pods come from Deployments of 20 replicas, each with a PDB
// selecting its pods, spread over namespaces of 50 Deployments; the real
// kube-controller-manager creates them and the real kube-scheduler places
// them, with client rate limits raised so that filling takes minutes.
//
// First it measures an exporter of the still empty cluster: the cost of the
// process itself, which every exporter, each shard too, pays. Then for the
// unsharded exporter, and with UPGRADEGUARD_SCALE_SHARDS=M for each
// of M shards, it prints one line: time until ready and until every pod is
// served, resident memory and heap in use, median and p90 of 20 gzip scrapes,
// series and bytes (as sent and uncompressed). It writes a heap profile of
// each exporter (UPGRADEGUARD_SCALE_PROFILE_DIR, else the test's artifact
// directory, kept with go test -artifacts) and prints its top. Timings are reported, never asserted: the test checks only that every
// pod is served, and that shards serve disjoint sets of nodes covering the
// cluster.
//
// UPGRADEGUARD_SCALE_COMPARE_ENV (e.g. "GOGC=25") also measures an unsharded
// exporter with these variables added to its environment, for tuning.
//
// UPGRADEGUARD_SCALE_NODES, a comma-separated list of node counts, runs
// other sizes in the same proportions (20 pods per node, one Deployment and
// PDB per 20 pods), e.g. "500" alone on a loaded machine.
func TestScale(t *testing.T) {
	sizes := []int{500, 2000}
	if env := os.Getenv("UPGRADEGUARD_SCALE_NODES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("UPGRADEGUARD_SCALE_NODES=%q: %q is not a positive node count", env, f)
			}
			sizes = append(sizes, n)
		}
	}
	shards := 1
	if env := os.Getenv("UPGRADEGUARD_SCALE_SHARDS"); env != "" {
		n, err := strconv.Atoi(env)
		if err != nil || n < 2 {
			t.Fatalf("UPGRADEGUARD_SCALE_SHARDS=%q: want a shard count of 2 or more", env)
		}
		shards = n
	}
	bin := testbed.BuildUpgradeguard(t)
	for _, nodes := range sizes {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) { scaleRun(t, bin, nodes, shards) })
	}
}

// The scenario's proportions.
const (
	podsPerNode             = 20
	replicasPerDeployment   = 20 // one PDB per Deployment
	deploymentsPerNamespace = 50
	// controllerQPS is the client rate limit of kube-controller-manager and
	// kube-scheduler: at their defaults (20 and 50 requests/s) 40,000 pods
	// take most of an hour to create and bind.
	controllerQPS = 400
	// controllerSyncs is kube-controller-manager's Deployment and
	// ReplicaSet workers: with its default 5, 2,000 Deployments get their
	// ReplicaSets at about 4 a second on a loaded 2-core machine.
	controllerSyncs = 50
)

// scenario is one size of the scale scenario.
type scenario struct {
	nodes, pods, deployments, namespaces int
}

func newScenario(nodes int) scenario {
	s := scenario{nodes: nodes, pods: nodes * podsPerNode}
	s.deployments = max(1, s.pods/replicasPerDeployment)
	s.pods = s.deployments * replicasPerDeployment
	s.namespaces = (s.deployments + deploymentsPerNamespace - 1) / deploymentsPerNamespace
	return s
}

func (s scenario) String() string {
	return fmt.Sprintf("%d nodes %d pods %d PDBs", s.nodes, s.pods, s.deployments)
}

func scaleRun(t *testing.T, bin string, nodes, shards int) {
	sc := newScenario(nodes)
	tb := testbed.ForTest(t, testbed.Options{
		ControllerQPS: controllerQPS, ControllerSyncs: controllerSyncs, LightScheduling: true,
		// Under load a Lease renewal or the controller manager's view of it
		// can lag past the default minute: the node lifecycle controller
		// then marks the node's pods not ready, and kwok, which plays the
		// ready stage only for Pending pods, never makes them ready again
		// (seen at 500 nodes with the load average above 20).
		NodeMonitorGracePeriod: 10 * time.Minute,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()

	// The exporter of the empty cluster: what every exporter costs before
	// the cluster adds to it.
	empty := measure(t, ctx, tb, bin, scenario{}, nil, kube.Shard{Index: 0, Total: 1}, "empty cluster", nil, nil)

	begin := time.Now()
	parallel(t, sc.nodes, func(i int) error {
		return tb.CreateNode(ctx, testbed.Node{
			Name: scaleNodeName(i), Zone: []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}[i%3],
			InstanceType: "m5.xlarge", NodeGroup: fmt.Sprintf("nodes-%d", i%4),
		})
	})
	fmt.Printf("scale %s: %d nodes created in %s\n", sc, sc.nodes, since(begin))
	// Deployment d in namespace team-<d/50>, with a PDB of the same name
	// selecting its pods (app=<name>) that lets one of them go at a time.
	one := intstr.FromInt32(1)
	parallel(t, sc.deployments, func(d int) error {
		return tb.CreateWorkload(ctx, testbed.Workload{
			Namespace: fmt.Sprintf("team-%03d", d/deploymentsPerNamespace), Name: fmt.Sprintf("app-%05d", d),
			Replicas: replicasPerDeployment, MaxUnavailable: &one,
		})
	})
	fmt.Printf("scale %s: %d Deployments and PDBs in %d namespaces created after %s\n", sc, sc.deployments, sc.namespaces, since(begin))
	waitFilled(t, ctx, tb, sc, begin)
	perNode := podsPerNodeName(t, ctx, tb, sc)
	preflightWorkloads(t, ctx, tb, bin, sc)

	unsharded := measure(t, ctx, tb, bin, sc, perNode, kube.Shard{Index: 0, Total: 1}, "unsharded", nil, &comparison{empty: &empty})
	if env := os.Getenv("UPGRADEGUARD_SCALE_COMPARE_ENV"); env != "" {
		measure(t, ctx, tb, bin, sc, perNode, kube.Shard{Index: 0, Total: 1}, "unsharded, "+env, strings.Fields(env),
			&comparison{empty: &empty, unsharded: &unsharded})
	}
	if shards < 2 {
		return
	}
	served := map[string]int{}
	for i := range shards {
		m := measure(t, ctx, tb, bin, sc, perNode, kube.Shard{Index: i, Total: shards}, fmt.Sprintf("shard %d of %d", i, shards), nil, &comparison{empty: &empty, unsharded: &unsharded})
		for n := range m.nodes {
			served[n]++
		}
	}
	for n, c := range served {
		if c != 1 {
			t.Errorf("node %s served by %d shards", n, c)
		}
	}
	if len(served) != sc.nodes {
		t.Errorf("the shards serve %d of %d nodes", len(served), sc.nodes)
	}
}

func scaleNodeName(i int) string { return fmt.Sprintf("node-%05d", i) }

// waitFilled waits until every Deployment reports all its replicas
// available and every PDB allows its one disruption, printing the progress
// every 30 seconds and the fill time.
func waitFilled(t *testing.T, ctx context.Context, tb *testbed.Testbed, sc scenario, begin time.Time) {
	t.Helper()
	filling := time.Now()
	var polled, printed time.Time
	err := testbed.WaitFor(ctx, 60*time.Minute, "every Deployment's replicas available", func(ctx context.Context) (bool, error) {
		if time.Since(polled) < 5*time.Second {
			return false, nil
		}
		polled = time.Now()
		var available, updated, deployments int
		err := eachItem(ctx, func(opts metav1.ListOptions) (runtime.Object, error) {
			return tb.Client.AppsV1().Deployments("").List(ctx, opts)
		}, func(obj runtime.Object) {
			d := obj.(*appsv1.Deployment)
			available += int(d.Status.AvailableReplicas)
			updated += int(d.Status.UpdatedReplicas)
			deployments++
		})
		if err != nil {
			return false, err
		}
		if time.Since(printed) >= 30*time.Second || available == sc.pods {
			fmt.Printf("scale %s: %d of %d pods available (%d created by the Deployments) after %s of filling, load %s\n",
				sc, available, sc.pods, updated, since(filling), loadAvg())
			printed = time.Now()
		}
		return deployments == sc.deployments && available == sc.pods, fmt.Errorf("%d of %d replicas available", available, sc.pods)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The disruption controller updates the PDBs' status after the pods
	// became ready; until then a budget allows no disruption and the pdb
	// collector serves drain_blocked series for it on every node holding its
	// pods, so measuring before would count series that go away.
	settling, firstAllowing := time.Now(), -1
	err = testbed.WaitFor(ctx, 10*time.Minute, "every PDB to allow its disruption", func(ctx context.Context) (bool, error) {
		if firstAllowing >= 0 && time.Since(polled) < 5*time.Second {
			return false, nil
		}
		polled = time.Now()
		var allowing, pdbs int
		err := eachItem(ctx, func(opts metav1.ListOptions) (runtime.Object, error) {
			return tb.Client.PolicyV1().PodDisruptionBudgets("").List(ctx, opts)
		}, func(obj runtime.Object) {
			p := obj.(*policyv1.PodDisruptionBudget)
			if p.Status.DisruptionsAllowed == 1 && p.Status.CurrentHealthy == replicasPerDeployment {
				allowing++
			}
			pdbs++
		})
		if err != nil {
			return false, err
		}
		if firstAllowing < 0 {
			firstAllowing = allowing
		}
		return pdbs == sc.deployments && allowing == pdbs, fmt.Errorf("%d of %d PDBs allow one disruption with %d pods healthy", allowing, pdbs, replicasPerDeployment)
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("scale %s: filled in %s (%s since the start); %d of %d PDBs allowed their disruption when the Deployments were, all %s later\n",
		sc, since(filling), since(begin), firstAllowing, sc.deployments, since(settling))
}

// podsPerNodeName lists the pods and counts them by node; every pod must be
// Running on one of the scenario's nodes.
func podsPerNodeName(t *testing.T, ctx context.Context, tb *testbed.Testbed, sc scenario) map[string]int {
	t.Helper()
	perNode := map[string]int{}
	total := 0
	var notRunning []string
	err := eachItem(ctx, func(opts metav1.ListOptions) (runtime.Object, error) {
		return tb.Client.CoreV1().Pods("").List(ctx, opts)
	}, func(obj runtime.Object) {
		p := obj.(*corev1.Pod)
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
			notRunning = append(notRunning, fmt.Sprintf("%s/%s is %s on node %q", p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName))
		}
		perNode[p.Spec.NodeName]++
		total++
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(notRunning) > 0 {
		t.Fatalf("%d pods not Running on a node, e.g. %s", len(notRunning), notRunning[0])
	}
	if total != sc.pods {
		t.Fatalf("%d pods, want %d", total, sc.pods)
	}
	return perNode
}

// eachItem calls f with every item of the paged list that list returns
// (client-go's pager, 500 items a page).
func eachItem(ctx context.Context, list func(metav1.ListOptions) (runtime.Object, error), f func(runtime.Object)) error {
	return pager.New(pager.SimplePageFunc(list)).EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		f(obj)
		return nil
	})
}

// loadAvg is the 1-minute load average, for reading the timings.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// parallel runs f(0..n-1) on 32 workers and fails the test on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		next  = make(chan int)
		once  sync.Once
		first error
	)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}
