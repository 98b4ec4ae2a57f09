package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// NodePoolResource is Karpenter's NodePool (karpenter.sh/v1).
var NodePoolResource = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}

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
// budget of zero nodes for every reason, which stops Karpenter's voluntary
// disruption (drift, expiry, consolidation, emptiness) of the pool. Forceful
// disruption (spot interruption, a deleted NodeClaim) is not budgeted and
// goes on: nothing can stop it.
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
}

// Kind implements Target.
func (*NodePools) Kind() string { return "karpenter" }

func nodePoolTarget(name string) string { return "nodepool/" + name }

func nodePoolRef(np *unstructured.Unstructured) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "karpenter.sh/v1", Kind: "NodePool", Name: np.GetName(), UID: np.GetUID(), ResourceVersion: np.GetResourceVersion()}
}

// list returns the selected NodePools and those the hold paused, by name.
func (n *NodePools) list(ctx context.Context) (map[string]*unstructured.Unstructured, error) {
	c := n.Client.Resource(NodePoolResource)
	out := map[string]*unstructured.Unstructured{}
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
	selectors := []string{LabelHeld}
	if n.Selector != "" {
		selectors = append(selectors, n.Selector)
	}
	for _, sel := range selectors {
		l, err := c.List(ctx, metav1.ListOptions{LabelSelector: sel})
		if apierrors.IsNotFound(err) {
			// The API serves no NodePools: Karpenter is not installed,
			// so there is nothing to pause.
			break
		}
		if err != nil {
			return nil, fmt.Errorf("listing NodePools %s: %w", sel, err)
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
	nps, listErr := n.list(ctx)
	if nps == nil {
		return listErr
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(nps)) {
		np := nps[name]
		var err error
		if d.Action == Hold {
			err = n.hold(ctx, np, d, r)
		} else {
			err = n.release(ctx, np, d, r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("NodePool %s: %w", name, err))
		}
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
	_, err = n.Client.Resource(NodePoolResource).Patch(ctx, np.GetName(), types.MergePatchType, raw, metav1.PatchOptions{FieldManager: eventSource})
	return err
}

func (n *NodePools) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *NodePools) hold(ctx context.Context, np *unstructured.Unstructured, d Decision, r *Reporter) error {
	target := nodePoolTarget(np.GetName())
	if np.GetDeletionTimestamp() != nil {
		return nil
	}
	cur, err := budgets(np)
	if err != nil {
		return fmt.Errorf("reading spec.disruption.budgets: %w", err)
	}
	ann := np.GetAnnotations()
	orig, held := ann[AnnotationBudgets]
	switch {
	case held && ann[AnnotationYielded] != "":
		r.Active(target, false) // a person's budgets rule until the hold ends
		return nil
	case held && isPaused(cur):
		r.Active(target, true)
		return nil
	case held:
		// A person changed the budgets while the pool was paused: theirs
		// stand, and the hold does not pause this pool again until it ends.
		if err := n.patch(ctx, np, nil, map[string]any{AnnotationYielded: n.now().UTC().Format(time.RFC3339)}, nil, false); err != nil {
			return err
		}
		now, _ := json.Marshal(cur)
		r.Yielded(ctx, target, nodePoolRef(np), d, fmt.Sprintf("spec.disruption.budgets were changed to %s while paused; the hold leaves them and does not pause this NodePool again until it ends (the budgets before the hold were %s)", now, orig))
		return nil
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	err = n.patch(ctx, np,
		map[string]any{LabelHeld: "paused"},
		map[string]any{AnnotationBudgets: string(raw), AnnotationSince: n.now().UTC().Format(time.RFC3339)},
		pausedBudgets, true)
	if err != nil {
		return err
	}
	r.Paused(ctx, target, nodePoolRef(np), d, fmt.Sprintf(`spec.disruption.budgets set to [{"nodes":"0"}] (were %s, kept in annotation %s)`, raw, AnnotationBudgets))
	return nil
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
