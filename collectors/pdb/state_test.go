package pdb

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// world drives the stores of informers that never run, and delivers each
// change to the incremental collector's handlers the way a running informer
// does: the store first, then the handler with the old and new objects.
type world struct {
	t   *testing.T
	inc *Collector
	res map[*kube.Informer]resource
	// order lists the informers' resources for relists.
	nodes, pods, pdbs *kube.Informer
}

type resource struct {
	strip   cache.TransformFunc
	handler func(oldObj, newObj any)
}

func newWorld(t *testing.T) *world {
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := &world{t: t, nodes: f.Nodes(), pods: f.Pods(), pdbs: f.PodDisruptionBudgets()}
	w.inc = newCollector(w.nodes, w.pods, w.pdbs)
	w.res = map[*kube.Informer]resource{
		w.nodes: {kube.StripNode(nil), w.inc.nodeEvent},
		w.pods:  {kube.StripPod, w.inc.podEvent},
		w.pdbs:  {kube.StripPDB, w.inc.pdbEvent},
	}
	return w
}

// put adds or updates obj.
func (w *world) put(inf *kube.Informer, obj any) {
	w.t.Helper()
	r := w.res[inf]
	stripped, err := r.strip(obj)
	if err != nil {
		w.t.Fatal(err)
	}
	old, exists, err := inf.GetIndexer().Get(stripped)
	if err != nil {
		w.t.Fatal(err)
	}
	if exists {
		if err := inf.GetIndexer().Update(stripped); err != nil {
			w.t.Fatal(err)
		}
		r.handler(old, stripped)
		return
	}
	if err := inf.GetIndexer().Add(stripped); err != nil {
		w.t.Fatal(err)
	}
	r.handler(nil, stripped)
}

// remove deletes the object stored under key; unknown wraps it as a
// deletion the watch missed.
func (w *world) remove(inf *kube.Informer, key string, unknown bool) {
	w.t.Helper()
	old, exists, _ := inf.GetIndexer().GetByKey(key)
	if !exists {
		return
	}
	if err := inf.GetIndexer().Delete(old); err != nil {
		w.t.Fatal(err)
	}
	if unknown {
		old = cache.DeletedFinalStateUnknown{Key: key, Obj: old}
	}
	w.res[inf].handler(old, nil)
}

// relist replaces inf's objects with objs as a relist does: updates and
// additions first, then deletions of the objects no longer listed, calling
// each after every item.
func (w *world) relist(inf *kube.Informer, objs []any, each func()) {
	w.t.Helper()
	listed := map[string]bool{}
	for _, obj := range objs {
		key, err := cache.MetaNamespaceKeyFunc(obj)
		if err != nil {
			w.t.Fatal(err)
		}
		listed[key] = true
		w.put(inf, obj)
		each()
	}
	for _, key := range inf.GetIndexer().ListKeys() {
		if !listed[key] {
			w.remove(inf, key, true)
			each()
		}
	}
}

// scrape returns the collector's series as sorted lines of text, and
// whether it returned an error. It ignores the informers' health: they never
// run here, so they never sync.
func scrape(t *testing.T, c *Collector) ([]string, bool) {
	t.Helper()
	errs := c.refresh()
	var buf bytes.Buffer
	if err := c.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.Lines(buf.String()) {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
	}
	slices.Sort(lines)
	return lines, len(errs) > 0
}

// check compares the incremental collector's scrape with a computation from
// scratch over the same stores.
func (w *world) check(step string) {
	w.t.Helper()
	got, gotErr := scrape(w.t, w.inc)
	want, wantErr := scrape(w.t, newCollector(w.nodes, w.pods, w.pdbs))
	if !slices.Equal(got, want) || gotErr != wantErr {
		w.t.Fatalf("after %s: incremental scrape (error %v):\n%s\nfrom scratch (error %v):\n%s",
			step, gotErr, strings.Join(got, "\n"), wantErr, strings.Join(want, "\n"))
	}
}

// randomPod returns a pod with random placement, labels and state.
func randomPod(r *rand.Rand, ns, name string) *corev1.Pod {
	nodes := []string{"n0", "n1", "n2", "n3", "", "gone"}
	labels := map[string]string{}
	if r.IntN(5) > 0 {
		labels["app"] = []string{"x", "y", "z"}[r.IntN(3)]
	}
	if r.IntN(2) == 0 {
		labels["tier"] = []string{"1", "2"}[r.IntN(2)]
	}
	var opts []func(*corev1.Pod)
	switch r.IntN(12) {
	case 0:
		opts = append(opts, notReady)
	case 1:
		opts = append(opts, unowned)
	case 2:
		opts = append(opts, withEmptyDir)
	case 3:
		opts = append(opts, phase([]corev1.PodPhase{corev1.PodPending, corev1.PodSucceeded, corev1.PodFailed}[r.IntN(3)]))
	case 4:
		opts = append(opts, ownedBy("DaemonSet"))
	case 5:
		opts = append(opts, deleting)
	}
	return pod(ns, name, nodes[r.IntN(len(nodes))], labels, opts...)
}

// randomPDB returns a PDB with a random selector, spec and status.
func randomPDB(r *rand.Rand, ns, name string) *policyv1.PodDisruptionBudget {
	selectors := []*metav1.LabelSelector{
		app("x"), app("y"), nil, {},
		{MatchLabels: map[string]string{"tier": "1"}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "z"}}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus", Values: []string{"x"}}}},
	}
	current := r.Int32N(4)
	var opts []func(*policyv1.PodDisruptionBudget)
	switch r.IntN(6) {
	case 0:
		opts = append(opts, generation(2, 1))
	case 1:
		opts = append(opts, unhealthyPolicy(policyv1.AlwaysAllow))
	case 2:
		opts = append(opts, minAvailable(intstr.FromString("100%")))
	}
	return pdb(ns, name, selectors[r.IntN(len(selectors))], r.Int32N(4)-1, 3, current, r.Int32N(4), opts...)
}

// TestIncrementalMatchesScratch applies a long random sequence of informer
// events - pods added, updated (moved, relabelled, turned unready,
// finished, deleted), PDBs created, deleted, their status and selectors
// changed, nodes coming and going, deletions the watch missed and relists -
// and after every one compares the incrementally maintained series with a
// computation from scratch over the same stores.
func TestIncrementalMatchesScratch(t *testing.T) {
	w := newWorld(t)
	r := rand.New(rand.NewPCG(18, 2026))
	namespaces := []string{"a", "b"}
	w.check("nothing")
	for step := range 1500 {
		ns := namespaces[r.IntN(len(namespaces))]
		var what string
		switch op := r.IntN(20); {
		case op < 8:
			name := fmt.Sprintf("p%d", r.IntN(25))
			what = "put pod " + ns + "/" + name
			w.put(w.pods, randomPod(r, ns, name))
		case op < 10:
			key := fmt.Sprintf("%s/p%d", ns, r.IntN(25))
			what = "delete pod " + key
			w.remove(w.pods, key, r.IntN(2) == 0)
		case op < 13:
			name := fmt.Sprintf("pdb%d", r.IntN(5))
			what = "put PDB " + ns + "/" + name
			w.put(w.pdbs, randomPDB(r, ns, name))
		case op < 14:
			key := fmt.Sprintf("%s/pdb%d", ns, r.IntN(5))
			what = "delete PDB " + key
			w.remove(w.pdbs, key, r.IntN(2) == 0)
		case op < 15:
			name := fmt.Sprintf("pdb%d", r.IntN(5))
			key := ns + "/" + name
			obj, ok, _ := w.pdbs.GetIndexer().GetByKey(key)
			if !ok {
				continue
			}
			// A status-only change: the same selector and spec.
			p := obj.(*policyv1.PodDisruptionBudget).DeepCopy()
			p.Status.DisruptionsAllowed = r.Int32N(4) - 1
			p.Status.CurrentHealthy, p.Status.DesiredHealthy = r.Int32N(4), r.Int32N(4)
			p.Status.ObservedGeneration = p.Generation - r.Int64N(2)
			what = "PDB status of " + key
			w.put(w.pdbs, p)
		case op < 17:
			name := fmt.Sprintf("n%d", r.IntN(5))
			if r.IntN(2) == 0 {
				what = "put node " + name
				w.put(w.nodes, node(name))
			} else {
				what = "delete node " + name
				w.remove(w.nodes, name, r.IntN(2) == 0)
			}
		default:
			// A relist of one resource with a random part of its objects
			// changed or gone, compared after each delivered item.
			inf := []*kube.Informer{w.nodes, w.pods, w.pdbs}[r.IntN(3)]
			var objs []any
			for _, obj := range inf.GetIndexer().List() {
				if r.IntN(5) == 0 {
					continue
				}
				objs = append(objs, obj)
			}
			what = fmt.Sprintf("relist of %s", inf.Name())
			i := 0
			w.relist(inf, objs, func() { i++; w.check(fmt.Sprintf("step %d, item %d of the %s", step, i, what)) })
		}
		w.check(fmt.Sprintf("step %d: %s", step, what))
	}
}

// TestRelistNeverShowsHalf relists every resource with the same objects
// (new copies, as a relist delivers) and scrapes after each delivered item:
// every scrape shows the whole cluster.
func TestRelistNeverShowsHalf(t *testing.T) {
	w := newWorld(t)
	for _, n := range []string{"n1", "n2"} {
		w.put(w.nodes, node(n))
	}
	w.put(w.pdbs, pdb("shop", "web", app("web"), 0, 2, 2, 2))
	w.put(w.pdbs, pdb("shop", "db", app("db"), 1, 2, 2, 1))
	w.put(w.pods, pod("shop", "web-1", "n1", lbl("app", "web")))
	w.put(w.pods, pod("shop", "web-2", "n2", lbl("app", "web")))
	w.put(w.pods, pod("shop", "db-1", "n1", lbl("app", "db")))
	want, _ := scrape(t, w.inc)
	if len(want) != 5*2+4*2+2 {
		t.Fatalf("scrape before the relist:\n%s", strings.Join(want, "\n"))
	}
	fresh := map[*kube.Informer][]any{
		w.nodes: {node("n1"), node("n2")},
		w.pdbs:  {pdb("shop", "web", app("web"), 0, 2, 2, 2), pdb("shop", "db", app("db"), 1, 2, 2, 1)},
		w.pods: {pod("shop", "web-1", "n1", lbl("app", "web")), pod("shop", "web-2", "n2", lbl("app", "web")),
			pod("shop", "db-1", "n1", lbl("app", "db"))},
	}
	for _, inf := range []*kube.Informer{w.nodes, w.pdbs, w.pods} {
		w.relist(inf, fresh[inf], func() {
			if got, _ := scrape(t, w.inc); !slices.Equal(got, want) {
				t.Fatalf("during the relist of %s:\n%s\nwant:\n%s", inf.Name(), strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestStatusChangeTouchesOnlyItsNodes checks that a PDB status change
// recomputes the nodes holding its pods and no other.
func TestStatusChangeTouchesOnlyItsNodes(t *testing.T) {
	w := newWorld(t)
	for _, n := range []string{"n1", "n2", "n3"} {
		w.put(w.nodes, node(n))
	}
	w.put(w.pdbs, pdb("shop", "web", app("web"), 1, 2, 2, 1))
	w.put(w.pdbs, pdb("shop", "db", app("db"), 1, 2, 2, 1))
	w.put(w.pods, pod("shop", "web-1", "n1", lbl("app", "web")))
	w.put(w.pods, pod("shop", "web-2", "n2", lbl("app", "web")))
	w.put(w.pods, pod("shop", "db-1", "n3", lbl("app", "db")))
	w.check("setup")
	before := map[string]*nodeState{}
	for n, st := range w.inc.nodeStates {
		before[n] = st
	}
	w.put(w.pdbs, pdb("shop", "web", app("web"), 0, 2, 1, 1))
	w.check("web's status change")
	for n, st := range w.inc.nodeStates {
		if recomputed := st != before[n]; recomputed != (n != "n3") {
			t.Errorf("node %s recomputed: %v", n, recomputed)
		}
	}
}
