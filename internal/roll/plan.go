package roll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// The orders a plan can take.
const (
	OrderOldest = "oldest" // oldest node first (creation time, then name)
	OrderName   = "name"   // by node name
	OrderZone   = "zone"   // oldest first, taking the zones in turn
)

// Orders lists the valid values of Selection.Order.
var Orders = []string{OrderOldest, OrderName, OrderZone}

// Selection says which nodes to roll and in which order.
type Selection struct {
	// NodeGroup selects the nodes whose node group label has this value:
	// NodeGroupLabel when set, else kops.k8s.io/instancegroup, else
	// eks.amazonaws.com/nodegroup.
	NodeGroup      string
	NodeGroupLabel string
	// Selector is a label selector; with NodeGroup both must match.
	Selector string
	// OnlyOutdated keeps only the nodes whose instance was launched from
	// another launch template version (or configuration) than its group's
	// current one, or whose kubelet is older than KubeletVersion.
	OnlyOutdated bool
	// KubeletVersion is the kubelet version a node needs to be up to date;
	// empty: the newest among the selected nodes.
	KubeletVersion string
	// Order is one of Orders (default oldest).
	Order string
	// UnhealthyFirst moves the nodes that are not Ready (a dead kubelet:
	// Ready Unknown) to the front, in Order among themselves: those are the
	// nodes an operator wants replaced most.
	UnhealthyFirst bool
}

func (s Selection) validate() error {
	if s.NodeGroup == "" && s.Selector == "" {
		return errors.New("select the nodes to roll with a node group or a label selector")
	}
	if s.Selector != "" {
		if _, err := labels.Parse(s.Selector); err != nil {
			return fmt.Errorf("label selector %q: %w", s.Selector, err)
		}
	}
	if s.KubeletVersion != "" {
		if _, err := version.ParseGeneric(s.KubeletVersion); err != nil {
			return fmt.Errorf("kubelet version %q: %w", s.KubeletVersion, err)
		}
	}
	switch s.Order {
	case "", OrderOldest, OrderName, OrderZone:
	default:
		return fmt.Errorf("order %q: want one of %s", s.Order, strings.Join(Orders, ", "))
	}
	return nil
}

// group is the selection without its label selector: where the node group's
// new nodes appear. A selection by label selector alone stays as it is.
func (s Selection) group() Selection {
	if s.NodeGroup != "" {
		s.Selector = ""
	}
	return s
}

// selectors returns the label selectors whose union is the selection (one
// per node group label tried).
func (s Selection) selectors() []string {
	if s.NodeGroup == "" {
		return []string{s.Selector}
	}
	keys := []string{kube.LabelKopsInstanceGroup, kube.LabelEKSNodegroup}
	if s.NodeGroupLabel != "" {
		keys = []string{s.NodeGroupLabel}
	}
	var out []string
	for _, k := range keys {
		sel := k + "=" + s.NodeGroup
		if s.Selector != "" {
			sel += "," + s.Selector
		}
		out = append(out, sel)
	}
	return out
}

// listNodes lists the selected nodes, by name.
func listNodes(ctx context.Context, client kubernetes.Interface, s Selection) ([]corev1.Node, error) {
	seen := map[string]bool{}
	var out []corev1.Node
	for _, sel := range s.selectors() {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("listing nodes with selector %q: %w", sel, err)
		}
		for _, n := range list.Items {
			if !seen[n.Name] {
				seen[n.Name] = true
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PlannedNode is one node of a plan.
type PlannedNode struct {
	Node     *corev1.Node
	Instance Instance // zero when HasInstance is false
	// HasInstance: the provider knows the node's instance.
	HasInstance bool
	// Outdated lists why the node needs replacing (empty: up to date).
	Outdated []string
	State    nodeState
}

// Name is the node's name.
func (p PlannedNode) Name() string { return p.Node.Name }

// Plan is what a roll replaces, in order.
type Plan struct {
	// Roll is the roll's id; Resumed is set when the plan continues a roll
	// found on the nodes' annotations.
	Roll    string
	Resumed bool
	Nodes   []PlannedNode
	// Skipped are the selected nodes left out: up to date (with
	// OnlyOutdated) or already replaced by this roll.
	Skipped []string
	// KubeletVersion is the version nodes are compared against.
	KubeletVersion string
	// Canary is how many of the first nodes form the canary phase, and
	// Soak how long the roll holds after them (set by Run).
	Canary int
	Soak   time.Duration
}

// groups returns the Auto Scaling groups of the plan's nodes, sorted.
func (p *Plan) groups() []string {
	seen := map[string]bool{}
	for _, n := range p.Nodes {
		if n.HasInstance && n.Instance.Group != "" {
			seen[n.Instance.Group] = true
		} else if n.State.Group != "" {
			seen[n.State.Group] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// makePlan selects and orders the nodes. A selection where some node
// carries a roll's annotations resumes that roll: its nodes in their
// recorded order, whatever the selection's filters say now.
func makePlan(ctx context.Context, client kubernetes.Interface, provider Provider, s Selection, now time.Time) (*Plan, error) {
	nodes, err := listNodes(ctx, client, s)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no node matches %s", strings.Join(s.selectors(), " or "))
	}
	var ids []string
	for _, n := range nodes {
		if id := kube.InstanceID(n.Spec.ProviderID); id != "" {
			ids = append(ids, id)
		}
	}
	insts := map[string]Instance{}
	if provider != nil && len(ids) > 0 {
		if insts, err = provider.Describe(ctx, ids); err != nil {
			return nil, err
		}
	}
	plan := &Plan{}
	target, err := kubeletTarget(s.KubeletVersion, nodes)
	if err != nil {
		return nil, err
	}
	if target != nil {
		plan.KubeletVersion = target.String()
	}
	var all []PlannedNode
	rolls := map[string]bool{}
	for i := range nodes {
		n := &nodes[i]
		st, err := readState(n)
		if err != nil {
			return nil, err
		}
		p := PlannedNode{Node: n, State: st}
		if id := kube.InstanceID(n.Spec.ProviderID); id != "" {
			p.Instance, p.HasInstance = insts[id]
		}
		if p.HasInstance && p.Instance.Outdated() {
			p.Outdated = append(p.Outdated, fmt.Sprintf("launched from %s, group launches %s", p.Instance.Launch, p.Instance.Current))
		}
		if target != nil {
			if v, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion); err != nil {
				p.Outdated = append(p.Outdated, fmt.Sprintf("kubelet version %q unreadable", n.Status.NodeInfo.KubeletVersion))
			} else if v.LessThan(target) {
				p.Outdated = append(p.Outdated, fmt.Sprintf("kubelet %s older than %s", v, target))
			}
		}
		if st.Roll != "" {
			rolls[st.Roll] = true
		}
		all = append(all, p)
	}
	if len(rolls) > 0 {
		// Resume: the nodes of the roll(s) found, in their recorded order.
		plan.Resumed = true
		var ids []string
		for r := range rolls {
			ids = append(ids, r)
		}
		sort.Strings(ids)
		plan.Roll = strings.Join(ids, ",")
		for _, p := range all {
			switch {
			case p.State.Roll == "":
				plan.Skipped = append(plan.Skipped, p.Name()+" (not part of the roll being resumed)")
			case p.State.Step == StepReplaced:
				plan.Skipped = append(plan.Skipped, p.Name()+" (already replaced)")
			default:
				plan.Nodes = append(plan.Nodes, p)
			}
		}
		// Nodes already under way first, then the recorded order.
		sort.SliceStable(plan.Nodes, func(i, j int) bool {
			a, b := plan.Nodes[i].State, plan.Nodes[j].State
			if (a.Step.rank() > 0) != (b.Step.rank() > 0) {
				return a.Step.rank() > 0
			}
			return a.Order < b.Order
		})
		for _, n := range plan.Nodes {
			if n.State.Phase == PhaseCanary {
				plan.Canary++
			}
			if n.State.Phase == PhaseMain && !n.State.Soaked {
				plan.Soak = max(plan.Soak, n.State.Soak)
			}
		}
		return plan, nil
	}
	plan.Roll = now.UTC().Format("20060102T150405Z")
	for _, p := range all {
		if s.OnlyOutdated && len(p.Outdated) == 0 {
			plan.Skipped = append(plan.Skipped, p.Name()+" (up to date)")
			continue
		}
		plan.Nodes = append(plan.Nodes, p)
	}
	order(plan.Nodes, s.Order)
	if s.UnhealthyFirst {
		sort.SliceStable(plan.Nodes, func(i, j int) bool { return !nodeReady(plan.Nodes[i].Node) && nodeReady(plan.Nodes[j].Node) })
	}
	return plan, nil
}

// kubeletTarget is the version a kubelet needs: the given one, or the
// newest among the nodes.
func kubeletTarget(given string, nodes []corev1.Node) (*version.Version, error) {
	if given != "" {
		return version.ParseGeneric(given)
	}
	var newest *version.Version
	for _, n := range nodes {
		v, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion)
		if err != nil {
			continue
		}
		if newest == nil || newest.LessThan(v) {
			newest = v
		}
	}
	return newest, nil
}

func olderFirst(a, b *corev1.Node) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Name < b.Name
}

// order sorts the nodes in place.
func order(nodes []PlannedNode, how string) {
	switch how {
	case OrderName:
		sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Name() < nodes[j].Name() })
	case OrderZone:
		sort.SliceStable(nodes, func(i, j int) bool { return olderFirst(nodes[i].Node, nodes[j].Node) })
		byZone := map[string][]PlannedNode{}
		var zones []string
		for _, p := range nodes {
			z := p.Node.Labels[corev1.LabelTopologyZone]
			if _, ok := byZone[z]; !ok {
				zones = append(zones, z)
			}
			byZone[z] = append(byZone[z], p)
		}
		sort.Strings(zones)
		out := nodes[:0:0]
		for len(out) < len(nodes) {
			for _, z := range zones {
				if q := byZone[z]; len(q) > 0 {
					out = append(out, q[0])
					byZone[z] = q[1:]
				}
			}
		}
		copy(nodes, out)
	default:
		sort.SliceStable(nodes, func(i, j int) bool { return olderFirst(nodes[i].Node, nodes[j].Node) })
	}
}

// Write prints the plan as a table.
func (p *Plan) Write(w io.Writer, now time.Time) error {
	what := "new roll " + p.Roll
	if p.Resumed {
		what = "resuming roll " + p.Roll
	}
	fmt.Fprintf(w, "plan: %s, %d node(s) to replace", what, len(p.Nodes))
	if p.KubeletVersion != "" {
		fmt.Fprintf(w, ", kubelet target %s", p.KubeletVersion)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNODE\tZONE\tAGE\tREADY\tKUBELET\tINSTANCE\tGROUP\tLAUNCHED FROM\tSTEP\tWHY")
	for i, n := range p.Nodes {
		inst, group, launch := "-", "-", "-"
		if n.HasInstance {
			inst, group, launch = n.Instance.ID, n.Instance.Group, n.Instance.Launch
		} else if id := kube.InstanceID(n.Node.Spec.ProviderID); id != "" {
			inst = id + " (unknown to the provider)"
		}
		step := string(n.State.Step)
		if step == "" {
			step = "-"
		}
		why := strings.Join(n.Outdated, "; ")
		if why == "" {
			why = "up to date (all nodes selected)"
		}
		ready := readyStatus(n.Node)
		num := strconv.Itoa(i + 1)
		if n.State.Phase == PhaseCanary || !p.Resumed && i < p.Canary {
			num += " canary"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", num, n.Name(), dash(n.Node.Labels[corev1.LabelTopologyZone]),
			now.Sub(n.Node.CreationTimestamp.Time).Round(time.Second), ready, dash(n.Node.Status.NodeInfo.KubeletVersion), inst, group, launch, step, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case p.Canary > 0 && p.Canary < len(p.Nodes) && p.Soak > 0:
		fmt.Fprintf(w, "canary phase: the %d node(s) marked canary first, then a soak of %s with the gate evaluating and their new nodes judged; any evaluation that does not pass, or a pod failing on a new node, stops the roll before the other %d node(s)\n",
			p.Canary, p.Soak, len(p.Nodes)-p.Canary)
	case p.Canary > 0 && p.Canary < len(p.Nodes):
		fmt.Fprintf(w, "canary phase: the %d node(s) marked canary first, then the other %d node(s)\n", p.Canary, len(p.Nodes)-p.Canary)
	case p.Canary == 0 && p.Soak > 0:
		fmt.Fprintf(w, "canary phase: the canary node(s) are replaced; the soak of %s is held (again, in full) before the other %d node(s)\n", p.Soak, len(p.Nodes))
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	return nil
}

// readyStatus is the node's Ready condition status ("-" without one).
func readyStatus(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return string(c.Status)
		}
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
