package roll

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The roll keeps its state on the nodes it replaces, so that a roll that was
// interrupted (a signal, a crash, a lost connection) can be run again and
// goes on where it was: which nodes belong to the roll and in which order,
// how far each one got, whether the roll cordoned it, and what ran on it.
const (
	// AnnotationRoll marks a node as part of a roll; its value is the roll's
	// id (the UTC time it was planned).
	AnnotationRoll = "upgradeguard.io/roll"
	// AnnotationOrder is the node's position in the roll's plan.
	AnnotationOrder = "upgradeguard.io/roll-order"
	// AnnotationStep is how far the node got (the Step values).
	AnnotationStep = "upgradeguard.io/roll-step"
	// AnnotationStepTime is when the node entered its step (RFC 3339).
	AnnotationStepTime = "upgradeguard.io/roll-step-time"
	// AnnotationCordoned is "true" when the roll cordoned the node (it was
	// schedulable before), so only then does an aborted drain uncordon it.
	AnnotationCordoned = "upgradeguard.io/roll-cordoned"
	// AnnotationWorkloads holds the workloads that ran on the node before
	// the drain and how many of their pods were ready then (JSON).
	AnnotationWorkloads = "upgradeguard.io/roll-workloads"
	// AnnotationSurge names the node that a surge brought up for this one.
	AnnotationSurge = "upgradeguard.io/roll-surge-node"
	// AnnotationSurgeRequested is when the roll raised the group's desired
	// capacity for this node (RFC 3339): a re-run after a failed or
	// interrupted surge waits for that launch instead of asking again.
	AnnotationSurgeRequested = "upgradeguard.io/roll-surge-requested"
	// AnnotationSurgeInstance is the instance the group launched for the
	// surge: the surge node is that instance's node, no other new node.
	AnnotationSurgeInstance = "upgradeguard.io/roll-surge-instance"
	// AnnotationGroup is the Auto Scaling group of the node's instance, for
	// a re-run after the instance is gone.
	AnnotationGroup = "upgradeguard.io/roll-group"
	// AnnotationPhase is "canary" on the nodes a --canary roll replaces
	// first and "main" on the others.
	AnnotationPhase = "upgradeguard.io/roll-phase"
	// AnnotationSoak is the canary soak (a duration) on the main nodes;
	// AnnotationSoaked is when it passed (RFC 3339).
	AnnotationSoak   = "upgradeguard.io/roll-canary-soak"
	AnnotationSoaked = "upgradeguard.io/roll-canary-soaked"
)

// The phases of a canary roll.
const (
	PhaseCanary = "canary"
	PhaseMain   = "main"
)

// Step is how far a node of the roll got.
type Step string

// The steps, in order. A node goes back to Pending when its drain is
// interrupted or fails (it is uncordoned then, if the roll cordoned it).
const (
	StepPending     Step = "pending"     // planned, untouched
	StepCordoned    Step = "cordoned"    // unschedulable, nothing evicted yet
	StepSurging     Step = "surging"     // the group was asked for one more instance
	StepDraining    Step = "draining"    // evictions under way
	StepDrained     Step = "drained"     // every evictable pod is gone
	StepTerminating Step = "terminating" // the instance termination was asked for
	StepReplaced    Step = "replaced"    // replacement Ready, workloads Running again
)

// rank orders the steps; an unknown step is treated as pending.
func (s Step) rank() int {
	switch s {
	case StepCordoned:
		return 1
	case StepSurging:
		return 2
	case StepDraining:
		return 3
	case StepDrained:
		return 4
	case StepTerminating:
		return 5
	case StepReplaced:
		return 6
	}
	return 0
}

// Workload is a controller whose pods ran on a node before its drain, with
// how many of its pods were ready in the whole cluster then: after the
// replacement, the roll waits until as many are ready again.
type Workload struct {
	Namespace string `json:"ns"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Ready     int    `json:"ready"`
}

func (w Workload) String() string { return w.Kind + " " + w.Namespace + "/" + w.Name }

// nodeState is the roll state read from a node's annotations.
type nodeState struct {
	Roll      string
	Order     int
	Step      Step
	StepTime  time.Time
	Cordoned  bool // by the roll
	Workloads []Workload
	HasLoads  bool // the workloads annotation was there
	SurgeNode string
	// SurgeRequested is when the surge was asked for (zero: not yet);
	// SurgeInstance the instance launched for it, once known.
	SurgeRequested time.Time
	SurgeInstance  string
	// Phase is PhaseCanary, PhaseMain or "" (no canary); Soak the canary
	// soak and Soaked when it passed.
	Phase  string
	Soak   time.Duration
	Soaked bool
	Group  string
}

func readState(n *corev1.Node) (nodeState, error) {
	a := n.Annotations
	s := nodeState{Roll: a[AnnotationRoll], Step: Step(a[AnnotationStep]), Cordoned: a[AnnotationCordoned] == "true", SurgeNode: a[AnnotationSurge],
		SurgeInstance: a[AnnotationSurgeInstance], Phase: a[AnnotationPhase], Soaked: a[AnnotationSoaked] != "", Group: a[AnnotationGroup]}
	if s.Roll == "" {
		return s, nil
	}
	if s.Step == "" {
		s.Step = StepPending
	}
	if s.Step.rank() == 0 && s.Step != StepPending {
		return s, fmt.Errorf("node %s: annotation %s=%q is not a step this version knows", n.Name, AnnotationStep, s.Step)
	}
	if v := a[AnnotationOrder]; v != "" {
		o, err := strconv.Atoi(v)
		if err != nil {
			return s, fmt.Errorf("node %s: annotation %s=%q: %w", n.Name, AnnotationOrder, v, err)
		}
		s.Order = o
	}
	if v := a[AnnotationStepTime]; v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return s, fmt.Errorf("node %s: annotation %s=%q: %w", n.Name, AnnotationStepTime, v, err)
		}
		s.StepTime = t
	}
	if v := a[AnnotationSurgeRequested]; v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return s, fmt.Errorf("node %s: annotation %s=%q: %w", n.Name, AnnotationSurgeRequested, v, err)
		}
		s.SurgeRequested = t
	}
	if v := a[AnnotationSoak]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return s, fmt.Errorf("node %s: annotation %s=%q: %w", n.Name, AnnotationSoak, v, err)
		}
		s.Soak = d
	}
	if v, ok := a[AnnotationWorkloads]; ok {
		s.HasLoads = true
		if err := json.Unmarshal([]byte(v), &s.Workloads); err != nil {
			return s, fmt.Errorf("node %s: annotation %s: %w", n.Name, AnnotationWorkloads, err)
		}
	}
	return s, nil
}

// stateStore writes the roll state to nodes with merge patches.
type stateStore struct {
	client kubernetes.Interface
	now    func() time.Time
}

// patch sets (or with a nil value removes) annotations, and when
// unschedulable is not nil spec.unschedulable, in one merge patch.
func (s stateStore) patch(ctx context.Context, node string, ann map[string]*string, unschedulable *bool) (*corev1.Node, error) {
	body := map[string]any{}
	if len(ann) > 0 {
		body["metadata"] = map[string]any{"annotations": ann}
	}
	if unschedulable != nil {
		body["spec"] = map[string]any{"unschedulable": *unschedulable}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	n, err := s.client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, b, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, fmt.Errorf("patching node %s: %w", node, err)
	}
	return n, nil
}

func strp(s string) *string { return &s }

// setStep records a node's step and when it began.
func (s stateStore) setStep(ctx context.Context, node string, step Step, extra map[string]*string) (*corev1.Node, error) {
	ann := map[string]*string{
		AnnotationStep:     strp(string(step)),
		AnnotationStepTime: strp(s.now().UTC().Format(time.RFC3339)),
	}
	for k, v := range extra {
		ann[k] = v
	}
	return s.patch(ctx, node, ann, nil)
}

// join makes a node part of a roll, as its order-th node; extra adds
// annotations (the canary phase).
func (s stateStore) join(ctx context.Context, node, roll string, order int, extra map[string]*string) error {
	ann := map[string]*string{
		AnnotationRoll:     strp(roll),
		AnnotationOrder:    strp(strconv.Itoa(order)),
		AnnotationStep:     strp(string(StepPending)),
		AnnotationStepTime: strp(s.now().UTC().Format(time.RFC3339)),
	}
	for k, v := range extra {
		ann[k] = v
	}
	_, err := s.patch(ctx, node, ann, nil)
	return err
}

// cordon marks the node unschedulable and remembers whether the roll did
// it (a node an operator had cordoned stays cordoned when a drain aborts).
func (s stateStore) cordon(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	byRoll := "false"
	if !n.Spec.Unschedulable {
		byRoll = "true"
	}
	if st, _ := readState(n); st.Cordoned {
		byRoll = "true" // cordoned by an earlier run of this roll
	}
	t := true
	ann := map[string]*string{
		AnnotationStep:     strp(string(StepCordoned)),
		AnnotationStepTime: strp(s.now().UTC().Format(time.RFC3339)),
		AnnotationCordoned: strp(byRoll),
	}
	// Out of the Services' load balancers too (loadbalancers.go).
	labels, excl := exclusion(n)
	for k, v := range excl {
		ann[k] = v
	}
	return s.patchMeta(ctx, n.Name, labels, ann, &t)
}

// release puts a node back to pending after an interrupted or failed drain,
// uncordoning it if the roll had cordoned it and removing the load balancer
// exclusion if the roll had set it. The workloads stay recorded:
// they describe the cluster before the first eviction.
func (s stateStore) release(ctx context.Context, n *corev1.Node) error {
	st, err := readState(n)
	if err != nil {
		return err
	}
	var unsched *bool
	if st.Cordoned {
		f := false
		unsched = &f
	}
	ann := map[string]*string{
		AnnotationStep:     strp(string(StepPending)),
		AnnotationStepTime: strp(s.now().UTC().Format(time.RFC3339)),
		AnnotationCordoned: nil,
	}
	// Back into the load balancers, if the roll took it out.
	labels, incl := inclusion(n)
	for k, v := range incl {
		ann[k] = v
	}
	_, err = s.patchMeta(ctx, n.Name, labels, ann, unsched)
	return err
}

// leave removes every roll annotation from a node (roll --reset).
func (s stateStore) leave(ctx context.Context, n *corev1.Node) error {
	ann := map[string]*string{}
	for _, k := range []string{AnnotationRoll, AnnotationOrder, AnnotationStep, AnnotationStepTime, AnnotationCordoned, AnnotationWorkloads, AnnotationSurge,
		AnnotationSurgeRequested, AnnotationSurgeInstance, AnnotationPhase, AnnotationSoak, AnnotationSoaked, AnnotationGroup, AnnotationCanaryNodes, AnnotationExcluded} {
		if _, ok := n.Annotations[k]; ok {
			ann[k] = nil
		}
	}
	if len(ann) == 0 {
		return nil
	}
	_, err := s.patch(ctx, n.Name, ann, nil)
	return err
}

func encodeWorkloads(w []Workload) (string, error) {
	sort.Slice(w, func(i, j int) bool { return w[i].UID < w[j].UID })
	if w == nil {
		w = []Workload{}
	}
	b, err := json.Marshal(w)
	return string(b), err
}
