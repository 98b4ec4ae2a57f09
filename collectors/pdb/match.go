package pdb

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

type pdbKey struct{ namespace, name string }

// cachedSelector is a PDB's parsed selector, kept while the PDB's
// spec.selector stays the same.
type cachedSelector struct {
	selector labels.Selector // nil when it matches nothing
	err      error
	// required lists the selector's requirements that a label equal one of
	// some values, by which the PDB is found from a pod's labels.
	required []requiredLabel
}

type requiredLabel struct {
	key    string
	values []string
}

func parseSelector(pdb *policyv1.PodDisruptionBudget) *cachedSelector {
	s := &cachedSelector{}
	// A nil selector gives labels.Nothing() and an empty one
	// labels.Everything(), the policy/v1 semantics.
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		s.err = err
		return s
	}
	reqs, selectable := sel.Requirements()
	if !selectable { // labels.Nothing()
		return s
	}
	s.selector = sel
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			s.required = append(s.required, requiredLabel{key: r.Key(), values: r.ValuesUnsorted()})
		}
	}
	return s
}

// namespaceBudgets are the PDBs of one namespace, indexed so that a pod is
// matched against the few whose selector could select it, not against all of
// them: a PDB whose selector requires a label to equal one of some values is
// listed under that label and those values, the others are tried on every pod.
// It is rebuilt when a PDB of the namespace comes, goes or changes selector.
type namespaceBudgets struct {
	byLabel []labelIndex
	always  []*budget
}

// labelIndex lists budgets by the value their selector requires of one label.
type labelIndex struct {
	key     string
	byValue map[string][]*budget
}

func newNamespaceBudgets(budgets []*budget) *namespaceBudgets {
	nb := &namespaceBudgets{}
	for _, b := range budgets {
		if b.sel.selector == nil {
			continue
		}
		if len(b.sel.required) == 0 {
			nb.always = append(nb.always, b)
			continue
		}
		// Prefer a label already indexed: fewer lookups per pod.
		req, idx := b.sel.required[0], -1
	search:
		for _, r := range b.sel.required {
			for i := range nb.byLabel {
				if nb.byLabel[i].key == r.key {
					req, idx = r, i
					break search
				}
			}
		}
		if idx < 0 {
			idx = len(nb.byLabel)
			nb.byLabel = append(nb.byLabel, labelIndex{key: req.key, byValue: map[string][]*budget{}})
		}
		for _, v := range req.values {
			nb.byLabel[idx].byValue[v] = append(nb.byLabel[idx].byValue[v], b)
		}
	}
	return nb
}

// match appends to matched the budgets whose selector selects the pod.
func (nb *namespaceBudgets) match(pod *kube.Pod, matched []*budget) []*budget {
	set := labels.Set(pod.Labels)
	for i := range nb.byLabel {
		v, ok := pod.Labels[nb.byLabel[i].key]
		if !ok {
			continue
		}
		for _, b := range nb.byLabel[i].byValue[v] {
			if b.sel.selector.Matches(set) {
				matched = append(matched, b)
			}
		}
	}
	for _, b := range nb.always {
		if b.sel.selector.Matches(set) {
			matched = append(matched, b)
		}
	}
	return matched
}
