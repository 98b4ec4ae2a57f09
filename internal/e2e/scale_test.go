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

	addr := freeAddr(t)
	started := time.Now()
	if _, err := tb.StartProcess("upgradeguard-exporter", []string{bin, "exporter",
		"--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr, "--kube.sync-timeout", "10m"}, nil); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	if err := testbed.WaitFor(ctx, 10*time.Minute, "the exporter to be ready", func(ctx context.Context) (bool, error) {
		code, err := status(ctx, base+"/readyz")
		return code == http.StatusOK, fmt.Errorf("readyz %d: %v", code, err)
	}); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(started)

	var mfs scrape.Families
	if err := testbed.WaitFor(ctx, 5*time.Minute, "the exporter to see every pod", func(ctx context.Context) (bool, error) {
		mfs, err = scrape.Get(ctx, base+"/metrics")
		if err != nil {
			return false, err
		}
		seen := 0.0
		for _, s := range mfs.Samples("upgradeguard_node_evictable_pods", nil) {
			seen += s.Value
		}
		return int(seen) == pods, fmt.Errorf("%v of %d pods", seen, pods)
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
	mfs, err = scrape.Get(ctx, base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	rss, _ := mfs.Value("process_resident_memory_bytes", nil)
	heap, _ := mfs.Value("go_memstats_heap_inuse_bytes", nil)
	fmt.Printf("scale %5d nodes %6d pods %5d PDBs: ready after %6.1fs, RSS %6.1f MiB, heap in use %6.1f MiB, scrape median %7.1fms p90 %7.1fms p99 %7.1fms, %d series\n",
		nodes, pods, apps, ready.Seconds(), rss/(1<<20), heap/(1<<20),
		float64(lat[len(lat)/2].Microseconds())/1000, float64(lat[len(lat)*9/10].Microseconds())/1000,
		float64(lat[len(lat)*99/100].Microseconds())/1000, mfs.Count())
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
