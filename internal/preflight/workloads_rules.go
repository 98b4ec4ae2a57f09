package preflight

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/upgradeguard/upgradeguard/collectors/pdb"
)

// singleReplica: RuleSingleReplicaService, judged Service by Service: a
// Service whose only ready endpoint is one of the workload's pods is down
// while that pod's node drains, whatever spec.replicas says (replicas
// Pending or not ready, or a selector matching one pod of several, as a
// primary's Service does).
func (c *workloadsCheck) singleReplica(ix *clusterIndex, w *workload, services []*corev1.Service) {
	var lone []string
	var pod *corev1.Pod
	for _, s := range services {
		if eps := ix.endpoints[s]; len(eps) == 1 && slices.Contains(w.pods, eps[0]) {
			lone = append(lone, s.Name)
			pod = eps[0]
		}
	}
	if len(lone) == 0 {
		return
	}
	effect := "while its node drains the Service has no ready endpoint: the pod is evicted, and its replacement serves only once scheduled on another node and ready"
	if w.kind == "StatefulSet" {
		effect = "while its node drains the Service has no ready endpoint: the pod is evicted, and the StatefulSet re-creates it only once it is gone, then it must be scheduled and ready"
	}
	msg := fmt.Sprintf("1 replica behind Service %s", list(lone, 3))
	fix := "spec.replicas: 2 or more, spread over nodes, with a PodDisruptionBudget (spec.maxUnavailable: 1)"
	if w.replicas != 1 || len(w.pods) != 1 {
		msg = fmt.Sprintf("Service %s has one ready endpoint, pod %s on node %s, of the workload's %d replicas (%d scheduled, %d ready): the others are not selected by it, not ready or not scheduled",
			list(lone, 3), pod.Name, pod.Spec.NodeName, w.replicas, len(w.pods), readyCount(w.pods))
		fix = "make more than one ready pod serve the Service: its spec.selector, the pods' readiness, or the Pending replicas (kubectl describe pod)"
	}
	c.add(RuleSingleReplicaService, w, msg, effect, fix)
}

// readyCount counts the pods whose Ready condition is True.
func readyCount(ps []*corev1.Pod) int {
	n := 0
	for _, p := range ps {
		if podReady(p) {
			n++
		}
	}
	return n
}

// Topology keys the scheduler keeps pods apart on.
var (
	hostKeys = []string{corev1.LabelHostname}
	zoneOnly = zoneKeys
	anyKeys  = append(slices.Clone(hostKeys), zoneKeys...)
)

// How a pod template keeps its pods apart on a topology key.
const (
	keptNot      = iota // nothing the scheduler enforces
	keptBySpread        // a topologySpreadConstraint with DoNotSchedule
	keptRequired        // a required podAntiAffinity
)

// kept tells how the pod's template keeps the workload's own pods apart on
// one of keys: by a required pod anti-affinity (no two of them in one
// domain, ever: interpodaffinity/filtering.go), by a DoNotSchedule spread
// constraint (a skew the scheduler enforces over the domains it counts,
// which may be one: podtopologyspread/filtering.go counts only the nodes
// the pod's nodeSelector and nodeAffinity allow, nodeAffinityPolicy Honor
// being the default), or not at all; and names the constraints on those
// keys it only prefers.
func kept(p *corev1.Pod, keys []string) (int, []string) {
	own := labels.Set(p.Labels)
	selects := func(ls *metav1.LabelSelector) bool {
		s, err := metav1.LabelSelectorAsSelector(ls)
		return err == nil && s.Matches(own)
	}
	var weak []string
	spread := false
	for _, t := range p.Spec.TopologySpreadConstraints {
		if !slices.Contains(keys, t.TopologyKey) || !selects(t.LabelSelector) {
			continue
		}
		if t.WhenUnsatisfiable == corev1.DoNotSchedule {
			spread = true
			continue
		}
		weak = append(weak, "topologySpreadConstraints on "+t.TopologyKey+" with whenUnsatisfiable ScheduleAnyway")
	}
	if a := p.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		// A term applies to its own namespace when it names none; a
		// namespace selector is taken to select it (namespaces' labels are
		// not read).
		ownNS := func(t corev1.PodAffinityTerm) bool {
			return len(t.Namespaces) == 0 || slices.Contains(t.Namespaces, p.Namespace) || t.NamespaceSelector != nil
		}
		for _, t := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if slices.Contains(keys, t.TopologyKey) && selects(t.LabelSelector) && ownNS(t) {
				return keptRequired, nil
			}
		}
		for _, wt := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if t := wt.PodAffinityTerm; slices.Contains(keys, t.TopologyKey) && selects(t.LabelSelector) && ownNS(t) {
				weak = append(weak, "preferred podAntiAffinity on "+t.TopologyKey)
			}
		}
	}
	if spread {
		return keptBySpread, nil
	}
	return keptNot, weak
}

// spreadNote says why a DoNotSchedule spread constraint on key did not
// keep the workload's n pods out of one domain, and what to change: the
// scheduler counts only the domains of the nodes the pod's nodeSelector
// and required nodeAffinity allow (nodeAffinityPolicy Honor, the default),
// a maxSkew of n or more lets all n share one domain, and a constraint is
// applied only when a pod is placed (podtopologyspread/filtering.go).
func spreadNote(p *corev1.Pod, key string, n int) (why, fix string) {
	where := "zone"
	if key == corev1.LabelHostname {
		where = "node"
	}
	skew := int32(0)
	for _, t := range p.Spec.TopologySpreadConstraints {
		if t.WhenUnsatisfiable == corev1.DoNotSchedule && (t.TopologyKey == key || key == corev1.LabelHostname) {
			skew = max(skew, t.MaxSkew)
		}
	}
	const prefix = "its topologySpreadConstraints with whenUnsatisfiable DoNotSchedule did not keep them apart: "
	a := p.Spec.Affinity
	restricted := len(p.Spec.NodeSelector) > 0 || (a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil)
	switch {
	case int(skew) >= n:
		return prefix + fmt.Sprintf("maxSkew %d lets all %d pods share one %s", skew, n, where),
			"spec.template.spec.topologySpreadConstraints[].maxSkew: 1"
	case restricted:
		return prefix + "the scheduler counts only the domains of the nodes its nodeSelector and nodeAffinity allow (nodeAffinityPolicy Honor, the default), here one " + where + ", so the replacements gather again",
			"spec.template.spec.nodeSelector and spec.template.spec.affinity.nodeAffinity: allow more than one " + where + ", so that the spread constraint has domains to spread over"
	default:
		return prefix + "the scheduler applies it only when it places a pod, and these were placed when one " + where + " was eligible (or before the constraint was added)",
			"restart the workload once more " + where + "s are eligible (kubectl rollout restart), so that the constraint places the pods again"
	}
}

// weakNote says why preferred constraints do not count.
func weakNote(weak []string) string {
	if len(weak) == 0 {
		return ""
	}
	return fmt.Sprintf("; its %s only scores nodes, it does not keep the pods apart", strings.Join(uniq(weak), " and "))
}

// guardNote is what a roll does to pods gathered on what it takes at once,
// with or without a PDB.
func guardNote(pdbs []*policyv1.PodDisruptionBudget, where string) string {
	if len(pdbs) == 0 {
		return "draining " + where + " evicts all of them at once (no PodDisruptionBudget): the workload is down until replacements are scheduled elsewhere and ready"
	}
	return "draining " + where + " evicts them only as PDB " + pdbs[0].Name + " allows, each replacement scheduled elsewhere first; nothing keeps the replacements apart, and losing " + where + " takes all of them"
}

// placement: RuleOneNode, RuleOneZone and RuleNoPDB.
func (c *workloadsCheck) placement(ix *clusterIndex, w *workload, pdbs []*policyv1.PodDisruptionBudget) {
	if w.replicas < 2 {
		return
	}
	rep := w.template()
	nodes, zones := map[string]bool{}, map[string]bool{}
	for _, p := range w.pods {
		nodes[p.Spec.NodeName] = true
		zones[ix.nodes[p.Spec.NodeName].zone] = true
	}
	switch {
	case len(w.pods) >= 2 && len(nodes) == 1:
		// All on one node is a fact whatever the template says: only a
		// required anti-affinity makes it impossible for pods scheduled
		// under it (pods placed before it was added are replaced by the
		// rollout that added it).
		if how, weak := kept(rep, anyKeys); how != keptRequired {
			why := fmt.Sprintf("no required podAntiAffinity on kubernetes.io/hostname nor topologySpreadConstraints with whenUnsatisfiable DoNotSchedule%s", weakNote(weak))
			fix := "spec.template.spec.topologySpreadConstraints: topologyKey kubernetes.io/hostname, whenUnsatisfiable DoNotSchedule, maxSkew 1 (or a required podAntiAffinity on kubernetes.io/hostname)"
			if how == keptBySpread {
				why, fix = spreadNote(rep, corev1.LabelHostname, len(w.pods))
			}
			c.add(RuleOneNode, w,
				fmt.Sprintf("all %d pods on node %s; %s", len(w.pods), rep.Spec.NodeName, why),
				guardNote(pdbs, "node "+rep.Spec.NodeName), fix)
		}
	case len(w.pods) >= 2 && len(zones) == 1 && len(ix.zoneGroups) > 1 && !zones[""]:
		zone := ix.nodes[rep.Spec.NodeName].zone
		if how, weak := kept(rep, zoneOnly); how != keptRequired {
			why := fmt.Sprintf("no required podAntiAffinity on topology.kubernetes.io/zone nor topologySpreadConstraints with whenUnsatisfiable DoNotSchedule%s", weakNote(weak))
			fix := "spec.template.spec.topologySpreadConstraints: topologyKey topology.kubernetes.io/zone, whenUnsatisfiable DoNotSchedule, maxSkew 1"
			if how == keptBySpread {
				why, fix = spreadNote(rep, corev1.LabelTopologyZone, len(w.pods))
			}
			c.add(RuleOneZone, w,
				fmt.Sprintf("all %d pods in zone %s (of %d zones); %s", len(w.pods), zone, len(ix.zoneGroups), why),
				"when the roll takes zone "+zone+"'s nodes together (roll --order zone, or a node group of that zone replaced at once), "+guardNote(pdbs, "them"),
				fix)
		}
	}
	if len(pdbs) > 0 {
		return
	}
	// One roll step drains maxUnavailable nodes of one node group: the
	// worst step takes the nodes holding most of the ready pods.
	ready := 0
	perGroup := map[string]map[string]int{} // group -> node -> ready pods
	for _, p := range w.pods {
		if !podReady(p) {
			continue
		}
		ready++
		g := ix.nodes[p.Spec.NodeName].group
		if perGroup[g] == nil {
			perGroup[g] = map[string]int{}
		}
		perGroup[g][p.Spec.NodeName]++
	}
	for g, byNode := range perGroup {
		if len(byNode) > c.maxUnavailable {
			continue
		}
		counted := 0
		for _, n := range byNode {
			counted += n
		}
		if counted < ready {
			continue
		}
		where := "node group " + g
		if g == "" {
			where = "nodes without a node group label"
		}
		c.add(RuleNoPDB, w,
			fmt.Sprintf("no PodDisruptionBudget selects its pods, and its %d ready pods are on %d node(s) of %s, no more than --max-unavailable %d", ready, len(byNode), where, c.maxUnavailable),
			"one roll step drains those nodes together and evicts every ready pod: the workload is down until replacements are scheduled elsewhere and ready",
			"add a PodDisruptionBudget (policy/v1) whose spec.selector matches spec.template.metadata.labels, with spec.maxUnavailable: 1; and spread the pods over more nodes (spec.template.spec.topologySpreadConstraints)")
		return
	}
}

// podReady tells whether the pod's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// budgets: RulePDBBlocks.
func (c *workloadsCheck) budgets(ix *clusterIndex, w *workload, pdbs []*policyv1.PodDisruptionBudget) {
	effect := fmt.Sprintf("every eviction of its pods is refused: upgradeguard roll reads the PDB as unsatisfiable and gives up the drain of the first node holding one (at the latest after --drain-timeout %s), uncordons the node and stops; kubectl drain retries until its own timeout", c.drainTimeout)
	if len(pdbs) > 1 {
		names := make([]string, len(pdbs))
		for i, p := range pdbs {
			names[i] = p.Name
		}
		sort.Strings(names)
		c.add(RulePDBBlocks, w, fmt.Sprintf("its pods are selected by %d PDBs (%s): the Eviction API refuses to evict a pod with more than one", len(pdbs), strings.Join(names, ", ")),
			"the Eviction API refuses its pods at once: upgradeguard roll's drain of the first node holding one fails, the node is uncordoned and the roll stops",
			"make exactly one PodDisruptionBudget select these pods: change the others' spec.selector")
		return
	}
	if len(pdbs) == 0 {
		return
	}
	p := pdbs[0]
	judged := p
	if p.Status.ExpectedPods == 0 {
		// The disruption controller has not counted the pods (yet): judge
		// against the workload's replicas.
		cp := *p
		cp.Status.ExpectedPods = w.replicas
		judged = &cp
	}
	if !pdb.Unsatisfiable(judged) {
		return
	}
	c.add(RulePDBBlocks, w, fmt.Sprintf("PDB %s (%s, %d expected pods) never allows an eviction", p.Name, budgetSpec(p), judged.Status.ExpectedPods),
		effect, fmt.Sprintf("PDB %s: spec.maxUnavailable: 1 (or spec.minAvailable below spec.replicas %d)", p.Name, w.replicas))
}

// servingContainers are the containers that take a Service's traffic: the
// ones declaring ports, else all.
func servingContainers(p *corev1.Pod) []corev1.Container {
	var out []corev1.Container
	for _, ctr := range p.Spec.Containers {
		if len(ctr.Ports) > 0 {
			out = append(out, ctr)
		}
	}
	if len(out) == 0 {
		return p.Spec.Containers
	}
	return out
}

// readiness: RuleNoReadinessProbe.
func (c *workloadsCheck) readiness(w *workload, services []*corev1.Service) {
	if len(services) == 0 {
		return
	}
	var missing []string
	for _, ctr := range servingContainers(w.template()) {
		if ctr.ReadinessProbe == nil && ctr.StartupProbe == nil {
			missing = append(missing, ctr.Name)
		}
	}
	if len(missing) == 0 {
		return
	}
	c.add(RuleNoReadinessProbe, w,
		fmt.Sprintf("behind Service %s; container %s has no readinessProbe", list(servicesOf(services), 3), strings.Join(missing, ", ")),
		"each replacement pod gets Service traffic as soon as its containers start, before it serves: requests fail during every drain",
		fmt.Sprintf("%s.containers[name=%s].readinessProbe", w.podSpecPath(), missing[0]))
}

// defaultGrace is terminationGracePeriodSeconds' default
// (k8s.io/api core/v1 DefaultTerminationGracePeriodSeconds).
const defaultGrace = corev1.DefaultTerminationGracePeriodSeconds

// termination: RuleGraceOverDrainTimeout and RulePreStopOverGrace.
func (c *workloadsCheck) termination(w *workload) {
	p := w.template()
	grace := int64(defaultGrace)
	if p.Spec.TerminationGracePeriodSeconds != nil {
		grace = *p.Spec.TerminationGracePeriodSeconds
	}
	field := w.podSpecPath() + ".terminationGracePeriodSeconds"
	if g := time.Duration(grace) * time.Second; g > c.drainTimeout {
		c.add(RuleGraceOverDrainTimeout, w,
			fmt.Sprintf("terminationGracePeriodSeconds %d (%s) is longer than the roll's drain timeout %s", grace, g, c.drainTimeout),
			"an evicted pod may take its whole grace period to stop, and the drain waits for it: the drain of its node can time out, and the roll then uncordons the node and stops",
			fmt.Sprintf("%s: %d or less, or a longer roll --drain-timeout (policy workloads.drain_timeout)", field, int64(c.drainTimeout/time.Second)))
	}
	for _, ctr := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		s, ok := preStopSeconds(ctr.Lifecycle)
		if !ok || s <= float64(grace) {
			continue
		}
		c.add(RulePreStopOverGrace, w,
			fmt.Sprintf("container %s's preStop sleeps %gs, longer than terminationGracePeriodSeconds %d", ctr.Name, s, grace),
			fmt.Sprintf("the kubelet cuts the preStop hook at the grace period (%ds), then sends SIGTERM with only 2 seconds left before SIGKILL: in-flight work is cut off on every drain", grace),
			fmt.Sprintf("%s above the preStop's %gs plus the time to shut down (or a shorter preStop sleep)", field, s))
	}
}

// sleepRE finds the sleeps of a shell command: "sleep 10", "sleep 5s".
var sleepRE = regexp.MustCompile(`(?:^|[\s;&|(/])sleep\s+(\d+(?:\.\d+)?)([smh]?)(?:$|[\s;&|)])`)

// preStopSeconds returns how long a preStop hook sleeps: a sleep action's
// seconds, or the sum of the sleeps of an exec command ("sleep N", or a
// shell's -c script holding them); false when there is none to read.
func preStopSeconds(l *corev1.Lifecycle) (float64, bool) {
	if l == nil || l.PreStop == nil {
		return 0, false
	}
	if s := l.PreStop.Sleep; s != nil {
		return float64(s.Seconds), true
	}
	if l.PreStop.Exec == nil || len(l.PreStop.Exec.Command) == 0 {
		return 0, false
	}
	total, found := 0.0, false
	for _, m := range sleepRE.FindAllStringSubmatch(strings.Join(l.PreStop.Exec.Command, " "), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		switch m[2] {
		case "m":
			v *= 60
		case "h":
			v *= 3600
		}
		total, found = total+v, true
	}
	return total, found
}

// emptyDir: RuleEmptyDir.
func (c *workloadsCheck) emptyDir(w *workload) {
	var vols []string
	for _, v := range w.template().Spec.Volumes {
		if v.EmptyDir != nil {
			vols = append(vols, v.Name)
		}
	}
	if len(vols) == 0 {
		return
	}
	field := w.podSpecPath() + ".volumes"
	c.add(RuleEmptyDir, w, fmt.Sprintf("emptyDir volume %s", strings.Join(vols, ", ")),
		"upgradeguard roll (as kubectl drain) refuses to drain its node without --force-local-storage; with it, the data in those volumes is deleted with the pod",
		fmt.Sprintf("%s[name=%s]: a PersistentVolumeClaim (a StatefulSet's volumeClaimTemplates) if the data must survive; else accept its loss with roll --force-local-storage", field, vols[0]))
}

// noController: RuleNoController.
func (c *workloadsCheck) noController(w *workload) {
	c.add(RuleNoController, w, "a pod without a controller (metadata.ownerReferences)",
		"upgradeguard roll (as kubectl drain) refuses to drain its node without --force-unmanaged; with it, the pod is deleted for good: nothing re-creates it",
		"run it from a Deployment or a StatefulSet (spec.template holding this pod's spec)")
}

// zonalVolumes: RuleZonalVolume.
func (c *workloadsCheck) zonalVolumes(ix *clusterIndex, w *workload) {
	type hit struct{ pod, claim string }
	byZone := map[string][]hit{}
	for _, p := range w.pods {
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim == nil {
				continue
			}
			z := ix.claims[nsName{p.Namespace, v.PersistentVolumeClaim.ClaimName}]
			if z == "" {
				continue
			}
			if groups := ix.zoneGroups[z]; len(groups) == 1 && !groups[""] {
				byZone[z] = append(byZone[z], hit{p.Name, v.PersistentVolumeClaim.ClaimName})
			}
		}
	}
	zones := make([]string, 0, len(byZone))
	for z := range byZone {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		group := joinSorted(ix.zoneGroups[z])
		var hits []string
		for _, h := range byZone[z] {
			hits = append(hits, h.pod+" (PVC "+h.claim+")")
		}
		c.add(RuleZonalVolume, w,
			fmt.Sprintf("pods %s are bound to volumes in zone %s, whose nodes are all in node group %s", list(hits, 3), z, group),
			fmt.Sprintf("those pods can only run on nodes of zone %s: while node group %s is rolled and its nodes there are cordoned or replaced, they stay Pending (volume node affinity conflict) until a new node of %s in %s is Ready", z, group, group, z),
			fmt.Sprintf("give zone %s nodes of a second node group, or roll %s with --surge (a new node before each drain)", z, group))
	}
}
