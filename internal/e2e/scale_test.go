//go:build scale

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestScale is `make bench-scale`: the exporter against the real API server
// at 1,000 and 3,000 kwok nodes with 30 pods each and one PDB per 10 pods.
// It reports the exporter's resident memory, scrape latency, series count and
// the time from start until ready. UPGRADEGUARD_SCALE_NODES, a comma-separated
// list of node counts, runs other sizes (e.g. "300" on a loaded machine).
func TestScale(t *testing.T) {
	sizes := []int{1000, 3000}
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
	bin := testbed.BuildUpgradeguard(t)
	for _, nodes := range sizes {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) { scaleRun(t, bin, nodes) })
	}
}

const podsPerNode, podsPerPDB = 30, 10

func scaleRun(t *testing.T, bin string, nodes int) {
	tb := testbed.ForTest(t, testbed.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	cfg := tb.RESTConfig()
	cfg.QPS, cfg.Burst = 2000, 4000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	begin := time.Now()
	parallel(t, nodes, func(i int) error {
		return tb.CreateNode(ctx, testbed.Node{
			Name: fmt.Sprintf("node-%05d", i), Zone: []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}[i%3],
			InstanceType: "m5.xlarge", NodeGroup: fmt.Sprintf("nodes-%d", i%4),
		})
	})
	pods := nodes * podsPerNode
	namespaces := max(1, nodes/100)
	for ns := range namespaces {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("team-%03d", ns)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// One PDB per 10 pods: app a in namespace a%namespaces selects pods
	// a*10 .. a*10+9.
	apps := pods / podsPerPDB
	parallel(t, apps, func(a int) error {
		one := intstr.FromInt32(1)
		_, err := client.PolicyV1().PodDisruptionBudgets(fmt.Sprintf("team-%03d", a%namespaces)).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%06d", a)},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: &one,
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%06d", a)}},
			},
		}, metav1.CreateOptions{})
		return err
	})
	// Pods are bound to their nodes directly: the scheduler is not what is
	// measured, and binding 90,000 pods through it would take most of the run.
	parallel(t, pods, func(i int) error {
		a := i / podsPerPDB
		_, err := client.CoreV1().Pods(fmt.Sprintf("team-%03d", a%namespaces)).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:   fmt.Sprintf("app-%06d-%d", a, i%podsPerPDB),
				Labels: map[string]string{"app": fmt.Sprintf("app-%06d", a), "team": fmt.Sprintf("team-%03d", a%namespaces)},
			},
			Spec: corev1.PodSpec{
				NodeName:    fmt.Sprintf("node-%05d", (i*7919)%nodes), // spread each app over nodes
				Tolerations: []corev1.Toleration{{Key: testbed.KwokAnnotation, Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "app", Image: "app"}},
			},
		}, metav1.CreateOptions{})
		return err
	})
	t.Logf("created %d nodes, %d pods, %d PDBs in %s", nodes, pods, apps, time.Since(begin).Round(time.Second))

	exp := startScaleExporter(t, ctx, tb, bin, pods, pods)
	fmt.Printf("scale %5d nodes %6d pods %5d PDBs: %s\n", nodes, pods, apps, exp)

	// UPGRADEGUARD_SCALE_SHARDS=M also runs M shards of the exporter and
	// measures each; their nodes must be disjoint and cover the cluster.
	if env := os.Getenv("UPGRADEGUARD_SCALE_SHARDS"); env != "" {
		total, err := strconv.Atoi(env)
		if err != nil || total < 2 {
			t.Fatalf("UPGRADEGUARD_SCALE_SHARDS=%q: want a shard count of 2 or more", env)
		}
		seen := map[string]int{}
		for i := range total {
			m := startScaleExporter(t, ctx, tb, bin, pods, -1, fmt.Sprintf("--shard=%d", i), fmt.Sprintf("--total-shards=%d", total))
			fmt.Printf("scale %5d nodes %6d pods %5d PDBs, shard %d of %d: %s (%.0f%% of the unsharded RSS)\n",
				nodes, pods, apps, i, total, m, 100*m.rss/exp.rss)
			for _, s := range m.last.Samples("upgradeguard_node_evictable_pods", nil) {
				seen[s.Labels["node"]]++
			}
		}
		for n, c := range seen {
			if c != 1 {
				t.Errorf("node %s served by %d shards", n, c)
			}
		}
		if len(seen) != nodes {
			t.Errorf("the shards serve %d of %d nodes", len(seen), nodes)
		}
	}
}

// measured is what scaleRun reports of one exporter.
type measured struct {
	ready            time.Duration
	rss, heap        float64
	median, p90, p99 time.Duration
	series           int
	last             scrape.Families
}

func (m measured) String() string {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return fmt.Sprintf("ready after %6.1fs, RSS %6.1f MiB, heap in use %6.1f MiB, scrape median %7.1fms p90 %7.1fms p99 %7.1fms, %d series",
		m.ready.Seconds(), m.rss/(1<<20), m.heap/(1<<20), ms(m.median), ms(m.p90), ms(m.p99), m.series)
}

// startScaleExporter starts an exporter with extra flags, waits until it is ready
// and its node_evictable_pods sum to want (any positive sum when want is
// negative: a shard sees part of the pods), then times 50 scrapes.
func startScaleExporter(t *testing.T, ctx context.Context, tb *testbed.Testbed, bin string, pods, want int, extra ...string) measured {
	t.Helper()
	addr := freeAddr(t)
	started := time.Now()
	args := append([]string{bin, "exporter",
		"--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr, "--kube.sync-timeout", "10m"}, extra...)
	if _, err := tb.StartProcess("upgradeguard-exporter"+strings.ReplaceAll(strings.Join(extra, ""), "--", "-"), args, nil); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	if err := testbed.WaitFor(ctx, 10*time.Minute, "the exporter to be ready", func(ctx context.Context) (bool, error) {
		code, err := status(ctx, base+"/readyz")
		return code == http.StatusOK, fmt.Errorf("readyz %d: %v", code, err)
	}); err != nil {
		t.Fatal(err)
	}
	m := measured{ready: time.Since(started)}

	var mfs scrape.Families
	if err := testbed.WaitFor(ctx, 5*time.Minute, "the exporter to see every pod", func(ctx context.Context) (bool, error) {
		var err error
		mfs, err = scrape.Get(ctx, base+"/metrics")
		if err != nil {
			return false, err
		}
		seen := 0.0
		for _, s := range mfs.Samples("upgradeguard_node_evictable_pods", nil) {
			seen += s.Value
		}
		return int(seen) == want || (want < 0 && seen > 0 && int(seen) <= pods), fmt.Errorf("%v of %d pods", seen, pods)
	}); err != nil {
		t.Fatal(err)
	}

	var lat []time.Duration
	for range 50 {
		begin := time.Now()
		if _, err := status(ctx, base+"/metrics"); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(begin))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	m.median, m.p90, m.p99 = lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100]
	var err error
	if mfs, err = scrape.Get(ctx, base+"/metrics"); err != nil {
		t.Fatal(err)
	}
	m.rss, _ = mfs.Value("process_resident_memory_bytes", nil)
	m.heap, _ = mfs.Value("go_memstats_heap_inuse_bytes", nil)
	m.series, m.last = mfs.Count(), mfs
	return m
}

// status GETs url, reads the whole body, and returns the status code.
func status(ctx context.Context, url string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

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
