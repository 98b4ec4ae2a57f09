package hold

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// What a paused karpenter.sh/v1 NodePool's budgets do not hold: expiry.
//
// In Karpenter v1 the nodeclaim expiration controller deletes a NodeClaim
// once creationTimestamp + its spec.expireAfter has passed, and reads no
// disruption budget (sigs.k8s.io/karpenter v1.15.0
// pkg/controllers/nodeclaim/expiration/controller.go; the budgets' reasons
// are Underutilized, Empty, Drifted and Unhealthy only,
// pkg/apis/v1/nodepool.go DisruptionReason). A NodeClaim's expireAfter is
// copied from its pool's spec.template.spec.expireAfter when it is created
// (NodeClaimTemplate.ToNodeClaim; CRD default 720h, "Never" disables it).
// Its drain then respects PDBs until spec.terminationGracePeriod, after
// which the pods are deleted (pkg/controllers/node/termination). So a held
// v1 pool whose expireAfter is not Never is not protected from expiry: the
// hold says so once per hold and pool (a Warning Event on the NodePool and a
// log record) and exports, every evaluation that holds, the pool's
// expireAfter, its terminationGracePeriod, how many of its NodeClaims expire
// within the next hour and when the first one does.
//
// In karpenter.sh/v1beta1 (Karpenter 0.3x) expiration is a disruption method
// that takes the budget (v0.37 pkg/controllers/disruption/expiration.go), so
// a paused v1beta1 pool is held from expiry too and nothing is reported.

// NodeClaimResource is Karpenter's NodeClaim (karpenter.sh/v1), listed for
// the expiry of the paused pools' nodes.
var NodeClaimResource = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"}

// LabelNodePool is the label Karpenter puts on a NodeClaim (and its node)
// naming its pool: kube.LabelKarpenterNodePool.
const LabelNodePool = kube.LabelKarpenterNodePool

// ExpiryHorizon is how far ahead upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour
// counts.
const ExpiryHorizon = time.Hour

// defaultExpireAfter is the v1 CRD's default of spec.template.spec.expireAfter,
// which the API server fills in (an object without it is read as having it).
const defaultExpireAfter = 720 * time.Hour

// expireAfter reads a Karpenter duration field: ok false for "Never".
// Absent, it is def (found false).
func expireAfter(obj map[string]any, def time.Duration, fields ...string) (d time.Duration, ok bool, err error) {
	v, found, err := unstructured.NestedString(obj, fields...)
	if err != nil {
		return 0, false, err
	}
	if !found {
		return def, def > 0, nil
	}
	if v == "Never" {
		return 0, false, nil
	}
	d, err = time.ParseDuration(v)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q: %w", strings.Join(fields, "."), v, err)
	}
	return d, true, nil
}

// poolExpiry is what the hold reports about one paused pool.
type poolExpiry struct {
	np          *unstructured.Unstructured
	expireAfter time.Duration
	defaulted   bool // the pool did not say: the CRD's default
	grace       time.Duration
	hasGrace    bool
	claims      int       // NodeClaims not being deleted
	expiring    int       // of them, expiring within ExpiryHorizon (or past it)
	next        time.Time // the first expiry (zero: none)
}

// expiry reports the expiry of the pools now paused (none on a release, or
// when no pool is paused: every series goes).
func (n *NodePools) expiry(ctx context.Context, paused []*unstructured.Unstructured, d Decision, r *Reporter) error {
	if d.Action != Hold || n.served != NodePoolResource {
		paused = nil
	}
	pools := map[string]*poolExpiry{}
	var errs []string
	for _, np := range paused {
		after, ok, err := expireAfter(np.Object, defaultExpireAfter, "spec", "template", "spec", "expireAfter")
		if err != nil {
			errs = append(errs, fmt.Sprintf("NodePool %s: %v", np.GetName(), err))
			continue
		}
		if !ok {
			continue // Never: nothing expires
		}
		_, found, _ := unstructured.NestedString(np.Object, "spec", "template", "spec", "expireAfter")
		p := &poolExpiry{np: np, expireAfter: after, defaulted: !found}
		p.grace, p.hasGrace, err = expireAfter(np.Object, 0, "spec", "template", "spec", "terminationGracePeriod")
		if err != nil {
			errs = append(errs, fmt.Sprintf("NodePool %s: %v", np.GetName(), err))
		}
		pools[np.GetName()] = p
	}
	// The series of pools no longer reported go; so does the memory of a
	// warning once the pool's hold ended.
	for name := range n.expirySeries {
		if pools[name] == nil {
			r.forgetExpiry(name)
			delete(n.expirySeries, name)
		}
	}
	for name := range n.expiryWarned {
		if pools[name] == nil {
			delete(n.expiryWarned, name)
		}
	}
	if len(pools) == 0 {
		if len(errs) > 0 {
			return fmt.Errorf("expiry report: %s", strings.Join(errs, "; "))
		}
		return nil
	}
	now := n.now()
	claimErr := n.countClaims(ctx, pools, now)
	if n.expirySeries == nil {
		n.expirySeries = map[string]bool{}
	}
	if n.expiryWarned == nil {
		n.expiryWarned = map[string]string{}
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p := pools[name]
		n.expirySeries[name] = true
		r.setExpiry(name, p.expireAfter, p.grace, p.hasGrace, p.expiring, p.next, claimErr == nil)
		since := p.np.GetAnnotations()[AnnotationSince]
		if w, said := n.expiryWarned[name]; said && w == since {
			continue // once per hold and pool
		}
		n.expiryWarned[name] = since
		r.NotHeld(ctx, nodePoolTarget(name), nodePoolRef(p.np), d, p.message(claimErr), p.attrs()...)
	}
	if claimErr != nil {
		errs = append(errs, claimErr.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("expiry report: %s", strings.Join(errs, "; "))
	}
	return nil
}

// countClaims lists the NodeClaims of the pools (one request) and counts
// them into each.
func (n *NodePools) countClaims(ctx context.Context, pools map[string]*poolExpiry, now time.Time) error {
	sel := LabelNodePool
	if req, err := labels.NewRequirement(LabelNodePool, selection.In, slices.Sorted(maps.Keys(pools))); err == nil {
		sel = labels.NewSelector().Add(*req).String()
	}
	l, err := n.Client.Resource(NodeClaimResource).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if apierrors.IsNotFound(err) {
		return nil // NodeClaims not served: there are none
	}
	if err != nil {
		return fmt.Errorf("listing NodeClaims %s: %w", sel, err)
	}
	horizon := now.Add(ExpiryHorizon)
	for i := range l.Items {
		nc := &l.Items[i]
		p := pools[nc.GetLabels()[LabelNodePool]]
		if p == nil || nc.GetDeletionTimestamp() != nil {
			continue // being deleted already: the expiration controller skips it too
		}
		p.claims++
		// The NodeClaim's own expireAfter (absent: none, as the controller
		// reads it), from its creation.
		after, ok, err := expireAfter(nc.Object, 0, "spec", "expireAfter")
		if err != nil || !ok {
			continue
		}
		at := nc.GetCreationTimestamp().Add(after)
		if !at.After(horizon) {
			p.expiring++
		}
		if p.next.IsZero() || at.Before(p.next) {
			p.next = at
		}
	}
	return nil
}

func (p *poolExpiry) message(claimErr error) string {
	var b strings.Builder
	src := "spec.template.spec.expireAfter"
	if p.defaulted {
		src = "the CRD's default of spec.template.spec.expireAfter"
	}
	fmt.Fprintf(&b, "paused, but expiry is not held: Karpenter v1 deletes each NodeClaim %s (%s) after its creation whatever the disruption budgets say", p.expireAfter, src)
	switch {
	case claimErr != nil:
		fmt.Fprintf(&b, "; its NodeClaims could not be read (%v)", claimErr)
	case p.claims == 0:
		b.WriteString("; it has no NodeClaims now")
	default:
		fmt.Fprintf(&b, "; %d of its %d NodeClaims expire within the next %s", p.expiring, p.claims, ExpiryHorizon)
		if !p.next.IsZero() {
			fmt.Fprintf(&b, ", the first at %s", p.next.UTC().Format(time.RFC3339))
		}
	}
	if p.hasGrace {
		fmt.Fprintf(&b, "; an expired node's drain respects PDBs for spec.template.spec.terminationGracePeriod (%s), then its pods are deleted", p.grace)
	} else {
		b.WriteString("; without spec.template.spec.terminationGracePeriod an expired node's drain waits for its PDBs indefinitely")
	}
	return b.String()
}

func (p *poolExpiry) attrs() []any {
	a := []any{"expire_after", p.expireAfter.String(), "nodeclaims", p.claims, "expiring_next_hour", p.expiring}
	if !p.next.IsZero() {
		a = append(a, "next_expiry", p.next.UTC().Format(time.RFC3339))
	}
	if p.hasGrace {
		a = append(a, "termination_grace_period", p.grace.String())
	}
	return a
}
