package pdb

import (
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// The Eviction API's decision, as EvictionREST.Create takes it in
// k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go (v1.37.2), in
// its order:
//
//  1. canIgnorePDB (lines 390-398): a pod with a deletionTimestamp, or in
//     phase Pending, Succeeded or Failed, is deleted without looking at PDBs.
//     It is never blocked.
//  2. getPodDisruptionBudgets (lines 497-522): the PDBs of the pod's namespace
//     whose metav1.LabelSelectorAsSelector(spec.selector) matches the pod's
//     labels. A nil selector matches nothing, an empty one every pod; a PDB
//     whose selector does not parse is skipped ("it does not match the pod").
//  3. More than one PDB (lines 224-231): refused with a 500 ("more than one
//     PodDisruptionBudget"), whatever the budgets say. Such a pod is counted
//     blocked under every PDB that selects it, and takes from none
//     (reason multiple_pdbs).
//  4. No PDB (lines 232-234): evicted.
//  5. A pod that is not Ready (lines 239-255; IsPodReady is the Ready
//     condition being True): evicted without taking from the budget when
//     spec.unhealthyPodEvictionPolicy is AlwaysAllow, or, under IfHealthyBudget
//     or no policy, when status.currentHealthy >= status.desiredHealthy and
//     status.desiredHealthy > 0. Otherwise it goes on to checkAndDecrement like
//     a Ready pod.
//  6. checkAndDecrement (lines 424-495): refused while
//     status.observedGeneration < metadata.generation (line 426: the budget is
//     still being processed), when status.disruptionsAllowed < 0 (line 430) or
//     == 0 (line 446); otherwise accepted and disruptionsAllowed decremented.
//     So of the node's pods that reach this step, the first disruptionsAllowed
//     are evicted and the rest refused (reason budget_exhausted; status_stale
//     for all of them while the status lags the spec).
//
// Two approximations. disruptionsAllowed is a cluster-wide budget: the count
// assumes this node alone is drained, from the budget as the PDB's status
// shows it now. And the refusal when status.disruptedPods holds more than
// MaxDisruptedPodSize (2000) entries (line 438) is not modelled: the PDB
// transform drops that map.

// canIgnorePDB is eviction.go's canIgnorePDB.
func canIgnorePDB(pod *kube.Pod) bool {
	switch pod.Phase {
	case corev1.PodSucceeded, corev1.PodFailed, corev1.PodPending:
		return true
	}
	return pod.DeletionTimestamp != nil
}

// needsBudget tells whether evicting the pod, selected by pdb alone, has to
// take one of the PDB's disruptionsAllowed (step 6) rather than being let
// through as an unhealthy pod (step 5).
func needsBudget(pod *kube.Pod, pdb *policyv1.PodDisruptionBudget) bool {
	if pod.Ready {
		return true
	}
	if p := pdb.Spec.UnhealthyPodEvictionPolicy; p != nil && *p == policyv1.AlwaysAllow {
		return false
	}
	return pdb.Status.CurrentHealthy < pdb.Status.DesiredHealthy || pdb.Status.DesiredHealthy <= 0
}

// Why the Eviction API refuses a pod, the reason label of
// upgradeguard_node_drain_blocked_pods.
const (
	// ReasonBudgetExhausted: the pod needs one of the PDB's disruptions
	// (step 6) and the node's pods needing one exceed
	// status.disruptionsAllowed, or it is 0 or negative (eviction.go lines
	// 430 and 446: 429 Too Many Requests, or 403 when negative). A drain of
	// the node proceeds in steps when the budget allows at least one now.
	ReasonBudgetExhausted = "budget_exhausted"
	// ReasonMultiplePDBs: more than one PDB selects the pod (step 3,
	// eviction.go lines 224-231: 500 Internal Server Error). No budget ever
	// lets it through; it is counted under every PDB that selects it.
	ReasonMultiplePDBs = "multiple_pdbs"
	// ReasonStatusStale: the pod needs the PDB's budget while
	// status.observedGeneration < metadata.generation (step 6, eviction.go
	// lines 426-428: 429 to every such pod until the disruption controller
	// catches up with the spec, whatever disruptionsAllowed says).
	ReasonStatusStale = "status_stale"
)

// Reasons lists the reason label's values, in the order refused counts them.
var Reasons = [...]string{ReasonBudgetExhausted, ReasonMultiplePDBs, ReasonStatusStale}

// refusals counts refused pods by reason, indexed as Reasons.
type refusals [len(Reasons)]int32

// refused returns how many of the node's pods counted in b the Eviction API
// would refuse, by reason (steps 3 and 6). The checks of checkAndDecrement
// are taken in its order: a stale status refuses before the budget is read.
func (b *budget) refused() refusals {
	var out refusals
	out[1] = b.multi
	st := b.pdb.Status
	switch {
	case b.consuming == 0:
	case st.ObservedGeneration < b.pdb.Generation:
		out[2] = b.consuming
	case st.DisruptionsAllowed <= 0:
		out[0] = b.consuming
	default:
		out[0] = max(0, b.consuming-st.DisruptionsAllowed)
	}
	return out
}

// unsatisfiable tells whether the PDB's spec leaves the disruption controller
// no way to allow an eviction at status.expectedPods. The controller
// (pkg/controller/disruption/disruption.go, getExpectedPodCount and
// updatePdbStatus) sets desiredHealthy to expectedPods - maxUnavailable, or to
// minAvailable (a percentage scaled against expectedPods, rounding up), and
// allows currentHealthy - desiredHealthy disruptions, none when expectedPods is
// 0. Hence:
//   - maxUnavailable 0 or "0%": desiredHealthy is every expected pod;
//   - minAvailable "100%", or one that scales to expectedPods or more;
//   - neither field set: the controller leaves expectedPods at 0, so it never
//     allows a disruption;
//   - a value the controller cannot parse: its sync fails and the budget stays
//     at 0 (the API server's validation should prevent this).
func unsatisfiable(pdb *policyv1.PodDisruptionBudget) bool {
	expected := int(pdb.Status.ExpectedPods)
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		// Scaled against 100, a percentage gives its own number.
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, 100, true)
		return err != nil || v <= 0
	case pdb.Spec.MinAvailable != nil:
		minAvailable := pdb.Spec.MinAvailable
		if minAvailable.Type == intstr.String {
			if pct, err := intstr.GetScaledValueFromIntOrPercent(minAvailable, 100, true); err != nil || pct >= 100 {
				return true
			}
		}
		if expected == 0 {
			return false
		}
		v, err := intstr.GetScaledValueFromIntOrPercent(minAvailable, expected, true)
		return err != nil || v >= expected
	default:
		return true
	}
}
