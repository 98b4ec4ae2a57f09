package roll

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// DrainOptions configure a drain.
type DrainOptions struct {
	// ForceUnmanaged evicts pods without a controller (nothing recreates
	// them); ForceLocalStorage evicts pods with emptyDir volumes (their data
	// is lost). Without them such pods make the drain refuse to start.
	ForceUnmanaged, ForceLocalStorage bool
	// Timeout bounds the whole drain of one node (default 15m).
	Timeout time.Duration
	// Backoff is the first wait after a refused eviction (429), doubled up
	// to MaxBackoff (defaults 1s and 15s), with jitter.
	Backoff, MaxBackoff time.Duration
	// Poll is how often the node's pods are listed while waiting for the
	// evicted ones to be gone (default 1s).
	Poll time.Duration
	// UnreachableGrace: on a node whose kubelet is unreachable (Ready
	// Unknown, or the node lifecycle controller's unreachable taint), no
	// kubelet will confirm a pod's deletion, so an evicted pod stays
	// Terminating until the node object goes. Such a pod counts as gone
	// once its deletion deadline (deletionTimestamp) is this far past, as
	// kubectl drain --skip-wait-for-delete-timeout does (k8s.io/kubectl
	// pkg/drain: waitForDelete and skipDeletedFilter). Default 1m; on a
	// reachable node the drain always waits for the kubelet.
	UnreachableGrace time.Duration
}

func (o *DrainOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(o.Backoff, 15*time.Second)
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.UnreachableGrace <= 0 {
		o.UnreachableGrace = time.Minute
	}
}

// nodeUnreachable reports whether no kubelet answers for the node: the node
// lifecycle controller set its Ready condition to Unknown and taints it
// node.kubernetes.io/unreachable when the kubelet stops posting status and
// renewing its Lease (k8s.io/kubernetes pkg/controller/nodelifecycle). A
// node whose kubelet reports Ready False is reachable: that kubelet still
// finishes pod deletions.
func nodeUnreachable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeUnreachable {
			return true
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionUnknown
		}
	}
	return false
}

// What a drain does with a pod.
type podAction int

const (
	actEvict           podAction = iota
	actSkipDaemonSet             // a DaemonSet's pod: it goes with the node
	actSkipMirror                // a static pod's mirror: the API cannot evict it
	actRefuseUnmanaged           // no controller recreates it
	actRefuseLocal               // emptyDir data would be lost
)

// mirrorAnnotation marks a static pod's mirror (kubelet's
// kubetypes.ConfigMirrorAnnotationKey).
const mirrorAnnotation = "kubernetes.io/config.mirror"

// classify decides, as kubectl drain does, what draining the node does with
// the pod. Finished pods are deleted whatever they are: nothing runs in them.
func classify(p *corev1.Pod, o DrainOptions) podAction {
	if _, ok := p.Annotations[mirrorAnnotation]; ok {
		return actSkipMirror
	}
	ctrl := metav1.GetControllerOf(p)
	if ctrl != nil && ctrl.Kind == "DaemonSet" {
		return actSkipDaemonSet
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return actEvict
	}
	if ctrl == nil && !o.ForceUnmanaged {
		return actRefuseUnmanaged
	}
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil && !o.ForceLocalStorage {
			return actRefuseLocal
		}
	}
	return actEvict
}

// podsOn lists the pods bound to a node. The field selector is applied by
// the API server; filtering again keeps fakes that ignore it honest.
func podsOn(ctx context.Context, client kubernetes.Interface, node string) ([]corev1.Pod, error) {
	list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of node %s: %w", node, err)
	}
	out := list.Items[:0]
	for _, p := range list.Items {
		if p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	return out, nil
}

// DrainPlan is what draining a node would do with its pods.
type DrainPlan struct {
	Evict   []*corev1.Pod
	Skipped []string // namespace/name (DaemonSet or mirror)
	Refused []string // namespace/name: reason and the option that accepts it
}

func planDrain(pods []corev1.Pod, o DrainOptions) DrainPlan {
	var dp DrainPlan
	for i := range pods {
		p := &pods[i]
		key := p.Namespace + "/" + p.Name
		switch classify(p, o) {
		case actEvict:
			dp.Evict = append(dp.Evict, p)
		case actSkipDaemonSet:
			dp.Skipped = append(dp.Skipped, key+" (DaemonSet)")
		case actSkipMirror:
			dp.Skipped = append(dp.Skipped, key+" (mirror pod)")
		case actRefuseUnmanaged:
			dp.Refused = append(dp.Refused, key+": no controller would recreate it (--force-unmanaged deletes it for good)")
		case actRefuseLocal:
			dp.Refused = append(dp.Refused, key+": emptyDir data would be lost (--force-local-storage accepts that)")
		}
	}
	sort.Strings(dp.Refused)
	return dp
}

// DrainError is a drain that did not finish. The node was not terminated.
type DrainError struct {
	Node string
	// Refused lists the pods the drain will not evict without a --force
	// option; it is set when the drain refused to start.
	Refused []string
	// Blocked maps each pod still on the node to why its eviction failed
	// last (the PodDisruptionBudget's answer, mostly).
	Blocked map[string]string
	// PDBs names the budgets (namespace/name) that refused evictions.
	PDBs []string
	// Unsatisfiable is set when a PDB's spec can never allow an eviction.
	Unsatisfiable string
	Err           error
}

func (e *DrainError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drain of node %s did not finish", e.Node)
	switch {
	case len(e.Refused) > 0:
		fmt.Fprintf(&b, ": refusing to evict %d pod(s): %s", len(e.Refused), strings.Join(e.Refused, "; "))
	case e.Unsatisfiable != "":
		fmt.Fprintf(&b, ": %s", e.Unsatisfiable)
	case e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.PDBs) > 0 && e.Unsatisfiable == "" {
		fmt.Fprintf(&b, "; refused by PodDisruptionBudget %s", strings.Join(e.PDBs, ", "))
	}
	if len(e.Blocked) > 0 {
		keys := make([]string, 0, len(e.Blocked))
		for k := range e.Blocked {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+": "+e.Blocked[k])
		}
		fmt.Fprintf(&b, "; pods left: %s", strings.Join(parts, "; "))
	}
	return b.String()
}

func (e *DrainError) Unwrap() error { return e.Err }

// ExitCode makes a blocked drain exit with 4.
func (e *DrainError) ExitCode() int { return 4 }

// drainer evicts a node's pods through the Eviction API.
type drainer struct {
	client kubernetes.Interface
	o      DrainOptions
	// onEvicted is told about each accepted eviction, refused about each
	// refusal (for progress and metrics); both may be nil.
	onEvicted func(pod string)
	onRefused func(pod, why string)
	// onGone is told about each evicted pod counted as gone on an
	// unreachable node (UnreachableGrace).
	onGone func(pod string, deleting time.Duration)
	now    func() time.Time
}

var budgetName = regexp.MustCompile(`disruption budget (\S+?) `)

// evictResult is one pod's eviction outcome.
type evictResult struct {
	pod     string
	err     error  // nil: accepted or already gone
	last    string // the last refusal, for the error
	pdb     string // namespace/name of the PDB that refused, if any
	unsat   string // the PDB can never allow the eviction
	evicted bool
}

// drain evicts every evictable pod of the node and waits until they are
// gone. It refuses to start when a pod needs a --force option it lacks. It
// returns the pods evicted.
func (d *drainer) drain(ctx context.Context, node string) (int, error) {
	d.o.defaults()
	ctx, cancel := context.WithTimeoutCause(ctx, d.o.Timeout, fmt.Errorf("drain timeout %s passed", d.o.Timeout))
	defer cancel()
	pods, err := podsOn(ctx, d.client, node)
	if err != nil {
		return 0, &DrainError{Node: node, Err: err}
	}
	dp := planDrain(pods, d.o)
	if len(dp.Refused) > 0 {
		return 0, &DrainError{Node: node, Refused: dp.Refused}
	}
	results := make([]evictResult, len(dp.Evict))
	// An unsatisfiable budget ends the whole drain at once.
	ectx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for i, p := range dp.Evict {
		wg.Go(func() {
			results[i] = d.evict(ectx, p)
			if results[i].unsat != "" {
				stop(errors.New(results[i].unsat))
			}
		})
	}
	wg.Wait()
	derr := &DrainError{Node: node, Blocked: map[string]string{}}
	pdbs := map[string]bool{}
	evicted := 0
	for _, r := range results {
		if r.evicted {
			evicted++
		}
		if r.pdb != "" {
			pdbs[r.pdb] = true
		}
		if r.unsat != "" && derr.Unsatisfiable == "" {
			derr.Unsatisfiable = r.unsat
		}
		if r.err != nil {
			why := r.last
			if why == "" {
				why = r.err.Error()
			}
			derr.Blocked[r.pod] = why
		}
	}
	for p := range pdbs {
		derr.PDBs = append(derr.PDBs, p)
	}
	sort.Strings(derr.PDBs)
	if len(derr.Blocked) > 0 || derr.Unsatisfiable != "" {
		switch {
		case derr.Unsatisfiable != "":
			derr.Err = errors.New(derr.Unsatisfiable)
		case ctx.Err() != nil:
			derr.Err = context.Cause(ctx) // the drain timeout, or the roll's interruption
		default:
			derr.Err = errors.New("evictions failed")
		}
		return evicted, derr
	}
	// Every eviction was accepted: wait until the pods are gone (their
	// grace period, their finalizers).
	want := map[types.UID]string{}
	for _, p := range dp.Evict {
		want[p.UID] = p.Namespace + "/" + p.Name
	}
	if d.now == nil {
		d.now = time.Now
	}
	gone := map[types.UID]bool{}
	for {
		pods, err := podsOn(ctx, d.client, node)
		if err == nil {
			left := map[string]string{}
			var overdue []*corev1.Pod
			for i := range pods {
				p := &pods[i]
				k, ok := want[p.UID]
				if !ok || gone[p.UID] {
					continue
				}
				if p.DeletionTimestamp != nil && d.now().Sub(p.DeletionTimestamp.Time) > d.o.UnreachableGrace {
					overdue = append(overdue, p)
				}
				left[k] = "evicted, still terminating"
			}
			if len(overdue) > 0 {
				if n, err := d.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil && nodeUnreachable(n) {
					for _, p := range overdue {
						k := want[p.UID]
						gone[p.UID] = true
						delete(left, k)
						if d.onGone != nil {
							d.onGone(k, d.now().Sub(p.DeletionTimestamp.Time))
						}
					}
				}
			}
			if len(left) == 0 {
				return evicted, nil
			}
			derr.Blocked = left
		}
		select {
		case <-ctx.Done():
			derr.Err = context.Cause(ctx)
			return evicted, derr
		case <-time.After(d.o.Poll):
		}
	}
}

// evict asks the Eviction API to evict one pod until it accepts, the pod is
// gone, or ctx ends. Refusals (429, a budget's negative allowance) are
// retried with backoff; a PDB whose spec never allows an eviction ends it.
func (d *drainer) evict(ctx context.Context, p *corev1.Pod) evictResult {
	r := evictResult{pod: p.Namespace + "/" + p.Name}
	backoff := d.o.Backoff
	checked := map[string]bool{}
	failures := 0
	for {
		err := d.client.CoreV1().Pods(p.Namespace).EvictV1(ctx, &policyv1.Eviction{
			ObjectMeta:    metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}},
		})
		switch {
		case err == nil:
			r.evicted = true
			if d.onEvicted != nil {
				d.onEvicted(r.pod)
			}
			return r
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Gone, or replaced by a new pod of the same name (the UID
			// precondition failed): the pod we meant to evict is gone.
			return r
		case apierrors.IsTooManyRequests(err), isBudgetRefusal(err):
			r.last = refusal(err)
			if name := refusingBudget(err); name != "" {
				r.pdb = p.Namespace + "/" + name
				if !checked[name] {
					checked[name] = true
					if why := d.unsatisfiable(ctx, p.Namespace, name); why != "" {
						r.unsat = why
						r.err = errors.New(why)
						return r
					}
				}
			}
			if d.onRefused != nil {
				d.onRefused(r.pod, r.last)
			}
			failures = 0
		case strings.Contains(err.Error(), "more than one PodDisruptionBudget"):
			r.err, r.last = err, "selected by more than one PodDisruptionBudget: the Eviction API refuses such pods; fix the budgets"
			return r
		default:
			if ctx.Err() != nil {
				r.err, r.last = context.Cause(ctx), "not evicted: the drain stopped"
				return r
			}
			failures++
			r.last = err.Error()
			if failures >= 5 {
				r.err = fmt.Errorf("evicting %s: %w", r.pod, err)
				return r
			}
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, d.o.MaxBackoff)
		select {
		case <-ctx.Done():
			r.err = context.Cause(ctx)
			if r.last == "" {
				r.last = "not evicted: the drain stopped"
			}
			return r
		case <-time.After(wait):
		}
	}
}

// isBudgetRefusal: a 403 with a DisruptionBudget cause (negative allowance,
// too many unconfirmed evictions) is a refusal to retry, like a 429.
func isBudgetRefusal(err error) bool {
	return apierrors.IsForbidden(err) && refusingBudget(err) != ""
}

// refusal is the Eviction API's reason, with its DisruptionBudget causes.
func refusal(err error) string {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return err.Error()
	}
	st := se.Status()
	msg := st.Message
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Type == policyv1.DisruptionBudgetCause {
				msg += " " + c.Message
			}
		}
	}
	return msg
}

// refusingBudget extracts the PDB's name from the refusal's cause.
func refusingBudget(err error) string {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Details == nil {
		return ""
	}
	for _, c := range se.Status().Details.Causes {
		if c.Type != policyv1.DisruptionBudgetCause {
			continue
		}
		if m := budgetName.FindStringSubmatch(c.Message); m != nil {
			return m[1]
		}
	}
	return ""
}

// unsatisfiable reads the PDB and tells, when its spec can never allow an
// eviction, why; "" when it can, or when it cannot be read (then the drain
// keeps retrying until its timeout).
func (d *drainer) unsatisfiable(ctx context.Context, ns, name string) string {
	pdb, err := d.client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	if why := unsatisfiableSpec(pdb); why != "" {
		return fmt.Sprintf("PodDisruptionBudget %s/%s %s: no eviction can ever pass; change the budget, then re-run", ns, name, why)
	}
	return ""
}

// unsatisfiableSpec says why a PDB's spec alone forbids every eviction:
// maxUnavailable 0 (or 0%), or minAvailable 100%. (A minAvailable equal to
// the replicas also forbids them, but a scale-up fixes that: the drain
// waits.)
func unsatisfiableSpec(pdb *policyv1.PodDisruptionBudget) string {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, 100, true)
		if err == nil && v <= 0 {
			return fmt.Sprintf("has maxUnavailable %s", pdb.Spec.MaxUnavailable.String())
		}
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.String:
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, 100, true)
		if err == nil && v >= 100 {
			return fmt.Sprintf("has minAvailable %s", pdb.Spec.MinAvailable.String())
		}
	}
	return ""
}
