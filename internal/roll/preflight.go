package roll

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PreflightError is a node the roll did not touch because the Eviction API,
// asked with dryRun before the cordon, refuses a pod in a way that waiting
// cannot cure: the pod is selected by more than one PodDisruptionBudget
// (the API answers 500 to every eviction of it), or its budget's spec can
// never allow an eviction. A refusal that a budget freeing up can cure (a
// 429 now) is not one: the drain waits for it.
type PreflightError struct {
	Node string
	// Pods maps each refused pod (namespace/name) to the reason.
	Pods map[string]string
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("node %s left as it was (not cordoned, nothing evicted): the Eviction API refuses %d pod(s) for good: %s",
		e.Node, len(e.Pods), e.list())
}

// list is "pod: reason; ..." by pod.
func (e *PreflightError) list() string {
	keys := make([]string, 0, len(e.Pods))
	for k := range e.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+e.Pods[k])
	}
	return strings.Join(parts, "; ")
}

// ExitCode makes a refused node exit with 4, as a drain that did not finish.
func (e *PreflightError) ExitCode() int { return 4 }

// preflight asks the Eviction API, with dryRun All (nothing is evicted),
// about every pod the drain would evict, so a node is never drained in
// part for nothing (pkg/registry/core/pod/storage/eviction.go in
// k8s.io/kubernetes runs the same checks, budgets included, for a dry run).
// It returns the pods refused for good; a 429 passes, and so does an error
// that says nothing lasting about the pod (the drain meets it again). A
// 403 that is not a budget's (RBAC) or a 405 ends it with an error.
func (d *drainer) preflight(ctx context.Context, pods []*corev1.Pod) (map[string]string, error) {
	refused := map[string]string{}
	checked := map[string]string{}
	for _, p := range pods {
		key := p.Namespace + "/" + p.Name
		err := d.client.CoreV1().Pods(p.Namespace).EvictV1(ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			DeleteOptions: &metav1.DeleteOptions{
				DryRun:        []string{metav1.DryRunAll},
				Preconditions: &metav1.Preconditions{UID: &p.UID},
			},
		})
		switch {
		case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		case strings.Contains(err.Error(), "more than one PodDisruptionBudget"):
			refused[key] = "selected by more than one PodDisruptionBudget (the Eviction API refuses every eviction of such a pod; fix the budgets)"
		case apierrors.IsTooManyRequests(err), isBudgetRefusal(err):
			name := refusingBudget(err)
			if name == "" {
				continue
			}
			why, ok := checked[p.Namespace+"/"+name]
			if !ok {
				why = d.unsatisfiable(ctx, p.Namespace, name)
				checked[p.Namespace+"/"+name] = why
			}
			if why != "" {
				refused[key] = why
			}
		case apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err):
			return nil, fmt.Errorf("asking the Eviction API about pod %s (dry run): %w", key, err)
		default:
			// Anything else may pass (a timeout, an unavailable server): the
			// drain retries it.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return refused, nil
}
