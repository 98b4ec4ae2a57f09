package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// NodePoolResource is Karpenter's NodePool (karpenter.sh/v1, Karpenter
// 1.x): the version the hold uses whenever the cluster serves it.
var NodePoolResource = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}

// NodePoolResourceV1Beta1 is the NodePool of Karpenter 0.33 to 0.37
// (karpenter.sh/v1beta1; spec.disruption.budgets since 0.34), used on a
// cluster that does not serve v1.
var NodePoolResourceV1Beta1 = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1beta1", Resource: "nodepools"}

// nodePoolVersions are the NodePool versions the hold knows, in the order it
// tries them: a cluster serving both uses v1.
var nodePoolVersions = []schema.GroupVersionResource{NodePoolResource, NodePoolResourceV1Beta1}

// What the hold keeps on a NodePool it paused. The label lets a restarted
// controller find every NodePool it paused, even one no longer selected.
const (
	// LabelHeld marks a NodePool the hold paused.
	LabelHeld = "upgradeguard.io/hold"
	// AnnotationBudgets holds the NodePool's spec.disruption.budgets from
	// before the pause, as JSON ("null" when it had none).
	AnnotationBudgets = "upgradeguard.io/hold-original-budgets"
	// AnnotationSince is when the hold paused the NodePool (RFC 3339).
	AnnotationSince = "upgradeguard.io/hold-since"
	// AnnotationYielded is set when a person changed the budgets while the
	// NodePool was paused: the hold then leaves it alone until it ends.
	AnnotationYielded = "upgradeguard.io/hold-yielded"
)

// pausedBudgets is what a paused NodePool's spec.disruption.budgets is: one
// budget of zero nodes for every reason. In karpenter.sh/v1 that stops the
// disruption methods budgets govern (Drifted, Underutilized and Empty, that
// is drift and consolidation, and in Karpenter 1.15 Unhealthy, the paced node
// repair: sigs.k8s.io/karpenter v1.15.0 pkg/apis/v1/nodepool.go
// DisruptionReason, pkg/controllers/disruption). It does NOT stop expiry:
// in v1 a NodeClaim older than its spec.expireAfter (from the pool's
// spec.template.spec.expireAfter, default 720h) is deleted by
// pkg/controllers/nodeclaim/expiration, which reads no budget (the hold
// reports such pools: karpenter_expiry.go). Nor interruption handling (the
// cloud provider's) or a NodeClaim deleted by hand. Once a NodeClaim is
// deleted its drain waits for PDBs only until spec.terminationGracePeriod,
// then deletes the pods. In karpenter.sh/v1beta1 (Karpenter 0.3x)
// expiration is a disruption method like drift (v0.37
// pkg/controllers/disruption/expiration.go), so the budget holds it there.
var pausedBudgets = []any{map[string]any{"nodes": "0"}}

// NodePools pauses Karpenter NodePools through their disruption budgets.
type NodePools struct {
	Client dynamic.Interface
	// Names and Selector (a label selector) choose the NodePools; a
	// NodePool matched by either is held.
	Names    []string
	Selector string
	// Now is the clock of AnnotationSince (default time.Now).
	Now func() time.Time

	// State of the Apply loop (one goroutine): the NodePool version the
	// cluster served at the last list (zero: none), whether the hold said
	// that it serves none, and the pools whose expiry it reported in this
	// hold (name to AnnotationSince) and whose expiry series it exports.
	served       schema.GroupVersionResource
	saidNone     bool
	expiryWarned map[string]string
	expirySeries map[string]bool
}

// Kind implements Target.
func (*NodePools) Kind() string { return "karpenter" }

func nodePoolTarget(name string) string { return "nodepool/" + name }

func nodePoolRef(np *unstructured.Unstructured) *corev1.ObjectReference {
	apiVersion := np.GetAPIVersion()
	if apiVersion == "" {
		apiVersion = NodePoolResource.GroupVersion().String()
	}
	return &corev1.ObjectReference{APIVersion: apiVersion, Kind: "NodePool", Name: np.GetName(), UID: np.GetUID(), ResourceVersion: np.GetResourceVersion()}
}

// Served is the NodePool version the last Apply found served (zero before
// the first, or when the cluster serves neither v1 nor v1beta1).
func (n *NodePools) Served() schema.GroupVersionResource { return n.served }

// discover lists the NodePools the hold paused in the first version the
// cluster serves (v1, else v1beta1: a list answers 404 for a resource not
// served) and remembers that version for the gets and patches that follow.
// ok is false when it serves neither.
func (n *NodePools) discover(ctx context.Context, r *Reporter, d Decision) (held *unstructured.UnstructuredList, ok bool, err error) {
	for _, gvr := range nodePoolVersions {
		l, err := n.Client.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: LabelHeld})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("listing NodePools %s (%s): %w", LabelHeld, gvr.GroupVersion(), err)
		}
		if n.served != gvr {
			r.logger.Info("Karpenter NodePools found", "target", n.Kind(), "apiVersion", gvr.GroupVersion().String())
		}
		n.served, n.saidNone = gvr, false
		return l, true, nil
	}
	n.served = schema.GroupVersionResource{}
	if !n.saidNone {
		// Said once (until NodePools are served again), not at every
		// evaluation, and never silently.
		n.saidNone = true
		what := "the cluster serves no Karpenter NodePools (neither karpenter.sh/v1 nor karpenter.sh/v1beta1): Karpenter is not installed, nothing to pause"
		if len(n.Names) > 0 {
			what += fmt.Sprintf(" (--karpenter.nodepool %s)", strings.Join(n.Names, ", "))
		}
		r.Notice(ctx, n.Kind(), d, what)
	}
	return nil, false, nil
}

// list returns the selected NodePools and those the hold paused, by name,
// in the version the cluster serves (nil, nil when it serves none).
func (n *NodePools) list(ctx context.Context, r *Reporter, d Decision) (map[string]*unstructured.Unstructured, error) {
	held, ok, err := n.discover(ctx, r, d)
	if !ok {
		return nil, err
	}
	c := n.Client.Resource(n.served)
	out := map[string]*unstructured.Unstructured{}
	for i := range held.Items {
		out[held.Items[i].GetName()] = &held.Items[i]
	}
	var errs []error
	for _, name := range n.Names {
		np, err := c.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("NodePool %s not found", name))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getting NodePool %s: %w", name, err)
		}
		out[name] = np
	}
	if n.Selector != "" {
		l, err := c.List(ctx, metav1.ListOptions{LabelSelector: n.Selector})
		if err != nil {
			return nil, fmt.Errorf("listing NodePools %s: %w", n.Selector, err)
		}
		for i := range l.Items {
			out[l.Items[i].GetName()] = &l.Items[i]
		}
	}
	return out, errors.Join(errs...)
}

// Apply implements Target.
func (n *NodePools) Apply(ctx context.Context, d Decision, r *Reporter) error {
	if d.Action == Keep {
		return nil
	}
	nps, listErr := n.list(ctx, r, d)
	if nps == nil {
		n.expiry(ctx, nil, d, r) // nothing paused: no expiry series
		return listErr
	}
	var errs []error
	var paused []*unstructured.Unstructured
	for _, name := range slices.Sorted(maps.Keys(nps)) {
		np := nps[name]
		var err error
		if d.Action == Hold {
			var on bool
			on, err = n.hold(ctx, np, d, r)
			if on {
				paused = append(paused, np)
			}
		} else {
			err = n.release(ctx, np, d, r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("NodePool %s: %w", name, err))
		}
	}
	// What the budgets do not hold in the pools now paused (on a release,
	// none: their series go).
	if err := n.expiry(ctx, paused, d, r); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(append(errs, listErr)...)
}

// budgets returns spec.disruption.budgets (nil when absent).
func budgets(np *unstructured.Unstructured) (any, error) {
	v, found, err := unstructured.NestedFieldNoCopy(np.Object, "spec", "disruption", "budgets")
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	return v, nil
}

func isPaused(b any) bool {
	// Compare as JSON values: what the API server returns decodes to
	// []any of map[string]any.
	raw, err := json.Marshal(b)
	if err != nil {
		return false
	}
	var got any
	if json.Unmarshal(raw, &got) != nil {
		return false
	}
	return reflect.DeepEqual(got, pausedBudgets)
}

// patch sends a JSON merge patch that only applies to the resourceVersion
// the decision was made on: a person's concurrent change wins (409, retried
// at the next evaluation with the new state).
func (n *NodePools) patch(ctx context.Context, np *unstructured.Unstructured, labels, annotations map[string]any, budgets any, setBudgets bool) error {
	meta := map[string]any{"resourceVersion": np.GetResourceVersion()}
	if labels != nil {
		meta["labels"] = labels
	}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	body := map[string]any{"metadata": meta}
	if setBudgets {
		body["spec"] = map[string]any{"disruption": map[string]any{"budgets": budgets}}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	_, err = n.Client.Resource(n.served).Patch(ctx, np.GetName(), types.MergePatchType, raw, metav1.PatchOptions{FieldManager: eventSource})
	return err
}

func (n *NodePools) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// hold pauses np; on is true when np is paused by the hold afterwards.
func (n *NodePools) hold(ctx context.Context, np *unstructured.Unstructured, d Decision, r *Reporter) (on bool, _ error) {
	target := nodePoolTarget(np.GetName())
	if np.GetDeletionTimestamp() != nil {
		return false, nil
	}
	cur, err := budgets(np)
	if err != nil {
		return false, fmt.Errorf("reading spec.disruption.budgets: %w", err)
	}
	ann := np.GetAnnotations()
	orig, held := ann[AnnotationBudgets]
	switch {
	case held && ann[AnnotationYielded] != "":
		r.Active(target, false) // a person's budgets rule until the hold ends
		return false, nil
	case held && isPaused(cur):
		r.Active(target, true)
		return true, nil
	case held:
		// A person changed the budgets while the pool was paused: theirs
		// stand, and the hold does not pause this pool again until it ends.
		if err := n.patch(ctx, np, nil, map[string]any{AnnotationYielded: n.now().UTC().Format(time.RFC3339)}, nil, false); err != nil {
			return false, err
		}
		now, _ := json.Marshal(cur)
		r.Yielded(ctx, target, nodePoolRef(np), d, fmt.Sprintf("spec.disruption.budgets were changed to %s while paused; the hold leaves them and does not pause this NodePool again until it ends (the budgets before the hold were %s)", now, orig))
		return false, nil
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return false, err
	}
	since := n.now().UTC().Format(time.RFC3339)
	err = n.patch(ctx, np,
		map[string]any{LabelHeld: "paused"},
		map[string]any{AnnotationBudgets: string(raw), AnnotationSince: since},
		pausedBudgets, true)
	if err != nil {
		return false, err
	}
	// The expiry report below reads the pause's time from the pool.
	ann = maps.Clone(ann)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationSince] = since
	np.SetAnnotations(ann)
	r.Paused(ctx, target, nodePoolRef(np), d, fmt.Sprintf(`spec.disruption.budgets set to [{"nodes":"0"}] (were %s, kept in annotation %s)`, raw, AnnotationBudgets))
	return true, nil
}

func (n *NodePools) release(ctx context.Context, np *unstructured.Unstructured, d Decision, r *Reporter) error {
	target := nodePoolTarget(np.GetName())
	ann := np.GetAnnotations()
	orig, held := ann[AnnotationBudgets]
	if !held {
		r.Active(target, false)
		return nil
	}
	drop := map[string]any{AnnotationBudgets: nil, AnnotationSince: nil, AnnotationYielded: nil}
	dropLabel := map[string]any{LabelHeld: nil}
	cur, err := budgets(np)
	if err != nil {
		return fmt.Errorf("reading spec.disruption.budgets: %w", err)
	}
	if ann[AnnotationYielded] != "" || !isPaused(cur) {
		// Whatever a person set stays; only the hold's marks go.
		if err := n.patch(ctx, np, dropLabel, drop, nil, false); err != nil {
			return err
		}
		now, _ := json.Marshal(cur)
		r.Yielded(ctx, target, nodePoolRef(np), d, fmt.Sprintf("the hold ended; spec.disruption.budgets were changed while paused and are left as %s (before the hold: %s)", now, orig))
		return nil
	}
	var want any
	if err := json.Unmarshal([]byte(orig), &want); err != nil {
		// Not ours to guess: leave the pool paused and say so.
		return fmt.Errorf("annotation %s is not JSON (%v); the NodePool stays paused: set spec.disruption.budgets by hand and remove the annotation", AnnotationBudgets, err)
	}
	// A nil want removes the field (merge patch null): the pool had none.
	if err := n.patch(ctx, np, dropLabel, drop, want, true); err != nil {
		return err
	}
	r.Resumed(ctx, target, nodePoolRef(np), d, fmt.Sprintf("spec.disruption.budgets restored to %s", orig))
	return nil
}
