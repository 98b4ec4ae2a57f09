package roll

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// The canary is judged by what runs on its new nodes, not only by the
// gate's view of the cluster: a Deployment of 4 replicas whose one pod on
// the new node crash-loops is within its maxUnavailable, so every gate
// evaluation passes while the new configuration is broken. During the soak
// (and already while the roll waits for a canary node's workloads) every
// pod bound to a new node must be Ready or Succeeded, no container there
// may restart during the soak, the new node must be Ready, and no pod may
// stay Pending for it.

// AnnotationCanaryNodes records, on the main nodes of a canary roll, the
// nodes that replaced the canary nodes ("new=old,new=old"): a re-run
// after a stop or an interruption judges the same new nodes in its soak,
// after the old canary nodes are gone.
const AnnotationCanaryNodes = "upgradeguard.io/roll-canary-nodes"

// CanaryStartGrace is the base start-up grace of a pod on a new node: a pod
// is not held against the canary for not being Ready (still being created,
// its image pulled, its readiness probe not yet passing) or for being
// Pending for a new node until this long after it was scheduled, plus its
// probes' own allowance (probeAllowance). Containers that crashed or
// cannot start (failingReasons) and restarts have no grace.
const CanaryStartGrace = 3 * time.Minute

// CanaryCreateGrace is how much longer than its start-up grace a pod may
// stay not Ready while the kubelet is still creating a container of it
// (waiting ContainerCreating or PodInitializing, no failing reason): a large
// image pulled on a cold new node takes minutes, and the kubelet reports a
// pull that fails (ErrImagePull, ImagePullBackOff) as soon as it does.
const CanaryCreateGrace = 10 * time.Minute

// creatingReasons are the reasons the kubelet gives a waiting container it
// is still creating (kubelet pkg/kubelet/kubelet_pods.go: ContainerCreating
// for a container not started yet, PodInitializing while init containers
// run).
var creatingReasons = map[string]bool{"ContainerCreating": true, "PodInitializing": true}

// failingReasons are the reasons the kubelet gives a waiting container
// that failed or cannot start; a container of a pod on a new node waiting
// for one of them fails the canary at once. CrashLoopBackOff, RunContainerError,
// CreatePodSandboxError and the like are kubelet's
// pkg/kubelet/container/sync_result.go; ImagePullBackOff, ErrImagePull,
// InvalidImageName, ErrImageNeverPull, ImageInspectError and
// RegistryUnavailable pkg/kubelet/images/types.go;
// CreateContainerConfigError, CreateContainerError and the hook errors
// pkg/kubelet/kuberuntime/kuberuntime_container.go (kubernetes/kubernetes).
var failingReasons = map[string]bool{
	"CrashLoopBackOff": true, "RunContainerError": true, "RunInitContainerError": true, "VerifyNonRootError": true,
	"CreatePodSandboxError": true, "ConfigPodSandboxError": true, "KillPodSandboxError": true, "KillContainerError": true,
	"ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"ImageInspectError": true, "RegistryUnavailable": true,
	"CreateContainerConfigError": true, "CreateContainerError": true,
	"PreCreateHookError": true, "PreStartHookError": true, "PostStartHookError": true,
}

// badNodeConditions are the node conditions that fail a new node when True
// (Ready fails it when not True): under pressure the kubelet evicts pods
// and refuses new ones (kubernetes/kubernetes pkg/kubelet/eviction), and
// without a network no pod there is reachable.
var badNodeConditions = []corev1.NodeConditionType{
	corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable,
}

// CanaryFinding is one reason a new node of the canary is not trusted.
type CanaryFinding struct {
	Node      string // the new node
	Replaces  string // the canary node it replaced, when known
	Pod       string // namespace/name; "" when the node itself fails
	Container string // "" when the pod (or node) as a whole fails
	// Reason is the kubelet's (CrashLoopBackOff, ImagePullBackOff, ...),
	// a node condition, or the judge's own: Restarted, NotReady, Failed,
	// Pending, Gone.
	Reason string
	Detail string // the kubelet's message, restarts, the workload elsewhere
}

func (f CanaryFinding) String() string {
	var b strings.Builder
	b.WriteString("node " + f.Node)
	if f.Replaces != "" {
		b.WriteString(" (replacing " + f.Replaces + ")")
	}
	if f.Pod != "" {
		b.WriteString(": pod " + f.Pod)
	}
	if f.Container != "" {
		b.WriteString(" container " + f.Container)
	}
	b.WriteString(": " + f.Reason)
	if f.Detail != "" {
		b.WriteString(" (" + f.Detail + ")")
	}
	return b.String()
}

// canaryVerdict is one judgement of the new nodes.
type canaryVerdict struct {
	Findings []CanaryFinding
	// Excused are pods that are not healthy on a new node while their
	// workload is not healthy anywhere else either: the gate's business,
	// not the new configuration's.
	Excused []string
	// Starting are pods on (or nominated for) a new node, not Ready yet
	// and within their start-up grace, with when it ends.
	Starting map[string]time.Time
	Pods     int // pods bound to the new nodes
}

// canaryJudge judges the canary's new nodes from the API.
type canaryJudge struct {
	client kubernetes.Interface
	now    func() time.Time
	// nodes maps each new node to the canary node it replaced ("" when
	// not known).
	nodes map[string]string
	// loads are the workloads the canary nodes' drains evicted: their pods
	// Pending unschedulable longer than the grace fail the canary.
	loads []Workload
	// began is when judging began (the new nodes Ready, or the soak's
	// start): a Pending pod's grace counts from it at the earliest.
	began time.Time
	// after skips Pending pods created before it (the roll's start): what
	// was Pending before the roll is not the canary's doing.
	after time.Time
	// restarts counts restarts from since on (zero: restarts are not
	// judged, only containers that cannot run).
	since time.Time
	// seen are the new nodes found so far; first the restart counts by
	// pod UID and container at the first sight.
	seen  map[string]bool
	first map[string]int32
}

func newCanaryJudge(client kubernetes.Interface, now func() time.Time, nodes map[string]string, loads []Workload) *canaryJudge {
	return &canaryJudge{client: client, now: now, nodes: nodes, loads: loads, began: now(), seen: map[string]bool{}, first: map[string]int32{}}
}

// names is the new nodes, sorted.
func (j *canaryJudge) names() []string {
	out := make([]string, 0, len(j.nodes))
	for n := range j.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// probeAllowance is how long a probe may take to pass at first:
// initialDelaySeconds plus periodSeconds times failureThreshold, with the
// API's defaults (period 10s, failureThreshold 3; k8s.io/api core/v1
// Probe).
func probeAllowance(p *corev1.Probe) time.Duration {
	if p == nil {
		return 0
	}
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period <= 0 {
		period = 10
	}
	if failures <= 0 {
		failures = 3
	}
	return time.Duration(p.InitialDelaySeconds+period*failures) * time.Second
}

// startGrace is a pod's start-up grace: CanaryStartGrace plus the longest
// startup and readiness probe allowance of its containers (a startup probe
// runs before the readiness probe, so both add up).
func startGrace(p *corev1.Pod) time.Duration {
	var longest time.Duration
	for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		longest = max(longest, probeAllowance(c.StartupProbe)+probeAllowance(c.ReadinessProbe))
	}
	return CanaryStartGrace + longest
}

// scheduledAt is when the pod was bound to its node (its PodScheduled
// condition's transition), else when it was created.
func scheduledAt(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return p.CreationTimestamp.Time
}

// judge lists the new nodes and their pods and says what fails the canary.
func (j *canaryJudge) judge(ctx context.Context) (canaryVerdict, error) {
	v := canaryVerdict{Starting: map[string]time.Time{}}
	now := j.now()
	type suspect struct {
		pod *corev1.Pod
		f   []CanaryFinding
	}
	var suspects []suspect
	for _, name := range j.names() {
		old := j.nodes[name]
		n, err := j.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && j.seen[name]:
			v.Findings = append(v.Findings, CanaryFinding{Node: name, Replaces: old, Reason: "Gone", Detail: "the node was deleted during the soak"})
			continue
		case apierrors.IsNotFound(err):
			continue // gone before this run judged it: nothing to judge
		case err != nil:
			return v, fmt.Errorf("reading new node %s: %w", name, err)
		}
		j.seen[name] = true
		if f, ok := nodeFinding(n); ok {
			f.Replaces = old
			v.Findings = append(v.Findings, f)
		}
		for _, c := range badNodeConditions {
			for _, cond := range n.Status.Conditions {
				if cond.Type == c && cond.Status == corev1.ConditionTrue {
					v.Findings = append(v.Findings, CanaryFinding{Node: name, Replaces: old, Reason: string(c), Detail: condDetail(cond)})
				}
			}
		}
		pods, err := podsOn(ctx, j.client, name)
		if err != nil {
			return v, err
		}
		for i := range pods {
			p := &pods[i]
			if p.DeletionTimestamp != nil {
				continue // on its way out
			}
			v.Pods++
			fs, starting := j.judgePod(p, now)
			for k := range fs {
				fs[k].Node, fs[k].Replaces = name, old
			}
			if len(fs) > 0 {
				suspects = append(suspects, suspect{p, fs})
			} else if !starting.IsZero() {
				v.Starting[p.Namespace+"/"+p.Name] = starting
			}
		}
	}
	// Pods Pending for a new node: nominated for it by a preemption, or
	// of a workload the canary's drains evicted that no node takes.
	pending, err := j.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("status.phase", string(corev1.PodPending)).String(),
	})
	if err != nil {
		return v, fmt.Errorf("listing the Pending pods: %w", err)
	}
	evicted := map[string]bool{}
	for _, w := range j.loads {
		evicted[w.UID] = true
	}
	for i := range pending.Items {
		p := &pending.Items[i]
		if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			continue
		}
		ctrl := metav1.GetControllerOf(p)
		nominated := p.Status.NominatedNodeName
		_, forNew := j.nodes[nominated]
		if !forNew && (ctrl == nil || !evicted[string(ctrl.UID)] || p.CreationTimestamp.Time.Before(j.after)) {
			continue
		}
		from := p.CreationTimestamp.Time
		if from.Before(j.began) {
			from = j.began
		}
		until := from.Add(startGrace(p))
		key := p.Namespace + "/" + p.Name
		if now.Before(until) {
			v.Starting[key] = until
			continue
		}
		f := CanaryFinding{Pod: key, Reason: "Pending"}
		if forNew {
			f.Node, f.Replaces = nominated, j.nodes[nominated]
			f.Detail = fmt.Sprintf("nominated for the new node, not bound %s later", seconds(now.Sub(from)))
		} else {
			f.Node = strings.Join(j.names(), ",")
			f.Detail = fmt.Sprintf("evicted from a canary node and not scheduled %s after the new node(s) were Ready", seconds(now.Sub(from)))
		}
		if msg := unschedulable(p); msg != "" {
			f.Detail += ": " + msg
		}
		suspects = append(suspects, suspect{p, []CanaryFinding{f}})
	}
	// A pod is held against the canary only while its workload is
	// healthy elsewhere, or has no pod elsewhere to compare with.
	peers := map[string]map[string][2]int{} // namespace -> controller UID -> [ready, all] off the new nodes
	for _, s := range suspects {
		ctrl := metav1.GetControllerOf(s.pod)
		if ctrl == nil {
			v.Findings = append(v.Findings, s.f...)
			continue
		}
		counts, ok := peers[s.pod.Namespace]
		if !ok {
			if counts, err = j.peerCounts(ctx, s.pod.Namespace); err != nil {
				return v, err
			}
			peers[s.pod.Namespace] = counts
		}
		c := counts[string(ctrl.UID)]
		workload := ctrl.Kind + " " + s.pod.Namespace + "/" + ctrl.Name
		if c[1] > 0 && c[0] == 0 {
			v.Excused = append(v.Excused, fmt.Sprintf("pod %s: %s, and none of the %d other pod(s) of %s is Ready either", s.pod.Namespace+"/"+s.pod.Name, s.f[0].Reason, c[1], workload))
			continue
		}
		for _, f := range s.f {
			elsewhere := fmt.Sprintf("%s has %d Ready pod(s) on other nodes", workload, c[0])
			if c[1] == 0 {
				elsewhere = workload + " has no pod on other nodes"
			}
			if f.Detail != "" {
				f.Detail += "; "
			}
			f.Detail += elsewhere
			v.Findings = append(v.Findings, f)
		}
	}
	return v, nil
}

// peerCounts counts, per controller UID, the namespace's pods off the new
// nodes that are Ready, and all of them (terminating pods aside).
func (j *canaryJudge) peerCounts(ctx context.Context, ns string) (map[string][2]int, error) {
	list, err := j.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of namespace %s: %w", ns, err)
	}
	out := map[string][2]int{}
	for i := range list.Items {
		p := &list.Items[i]
		ctrl := metav1.GetControllerOf(p)
		if ctrl == nil || p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		if _, onNew := j.nodes[p.Spec.NodeName]; onNew {
			continue
		}
		c := out[string(ctrl.UID)]
		c[1]++
		if podReady(p) || p.Status.Phase == corev1.PodSucceeded {
			c[0]++
		}
		out[string(ctrl.UID)] = c
	}
	return out, nil
}

// judgePod judges one pod bound to a new node: its findings, or when it is
// not Ready yet within its start-up grace, when that grace ends.
func (j *canaryJudge) judgePod(p *corev1.Pod, now time.Time) ([]CanaryFinding, time.Time) {
	key := p.Namespace + "/" + p.Name
	// A Job's pod runs to completion: it is never Ready for long, may keep a
	// sidecar (not a native one) running after its main container ended,
	// and its exit code is the Job's business (its backoffLimit and
	// podFailurePolicy). It is judged only for what says the new node
	// cannot run it: the kubelet's admission rejecting it, and containers
	// that cannot start (failingReasons).
	job := false
	if ctrl := metav1.GetControllerOf(p); ctrl != nil && ctrl.Kind == "Job" {
		job = true
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		return nil, time.Time{}
	case corev1.PodFailed:
		if job && p.Status.Reason == "" {
			return nil, time.Time{} // its containers failed: the Job's business
		}
		// Rejected by the node's admission (OutOfcpu, NodeAffinity...),
		// evicted by the kubelet, or a container that failed for good.
		f := CanaryFinding{Pod: key, Reason: "Failed"}
		if p.Status.Reason != "" {
			f.Reason = p.Status.Reason
		}
		f.Detail = p.Status.Message
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				f.Detail = strings.TrimPrefix(f.Detail+fmt.Sprintf("; container %s exited %d (%s)", cs.Name, t.ExitCode, t.Reason), "; ")
			}
		}
		return []CanaryFinding{f}, time.Time{}
	}
	var out []CanaryFinding
	statuses := slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
	for _, cs := range statuses {
		id := string(p.UID) + "/" + cs.Name
		base, seen := j.first[id]
		if !seen {
			j.first[id] = cs.RestartCount
			base = cs.RestartCount
		}
		if w := cs.State.Waiting; w != nil && failingReasons[w.Reason] {
			out = append(out, CanaryFinding{Pod: key, Container: cs.Name, Reason: w.Reason, Detail: containerDetail(cs, w.Message)})
			continue
		}
		if j.since.IsZero() {
			continue
		}
		last := cs.LastTerminationState.Terminated
		if cs.RestartCount > base || last != nil && !last.FinishedAt.Time.Before(j.since) && cs.RestartCount > 0 {
			out = append(out, CanaryFinding{Pod: key, Container: cs.Name, Reason: "Restarted", Detail: containerDetail(cs, "restarted during the soak")})
		}
	}
	if len(out) > 0 || podReady(p) || job {
		return out, time.Time{}
	}
	until := scheduledAt(p).Add(startGrace(p))
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && creatingReasons[w.Reason] {
			until = scheduledAt(p).Add(startGrace(p) + CanaryCreateGrace)
			break
		}
	}
	if now.Before(until) {
		return nil, until
	}
	f := CanaryFinding{Pod: key, Reason: "NotReady", Detail: fmt.Sprintf("not Ready %s after it was scheduled (grace %s)", seconds(now.Sub(scheduledAt(p))), startGrace(p))}
	var why []string
	for _, cs := range statuses {
		switch {
		case cs.Ready || cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
		case cs.State.Running != nil:
			why = append(why, "container "+cs.Name+" running, its readiness probe not passing")
		case cs.State.Waiting != nil:
			why = append(why, "container "+cs.Name+" waiting: "+strings.TrimSuffix(cs.State.Waiting.Reason+": "+cs.State.Waiting.Message, ": "))
		}
	}
	if len(why) == 0 {
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue && (c.Reason != "" || c.Message != "") {
				why = append(why, fmt.Sprintf("%s: %s", c.Type, strings.TrimSuffix(c.Reason+" "+c.Message, " ")))
			}
		}
	}
	if len(why) > 0 {
		f.Detail += "; " + strings.Join(why, "; ")
	}
	return []CanaryFinding{f}, time.Time{}
}

// containerDetail says how often a container restarted and how it last
// ended.
func containerDetail(cs corev1.ContainerStatus, msg string) string {
	parts := []string{}
	if msg != "" {
		parts = append(parts, msg)
	}
	parts = append(parts, fmt.Sprintf("%d restart(s)", cs.RestartCount))
	if t := cs.LastTerminationState.Terminated; t != nil {
		parts = append(parts, fmt.Sprintf("last exit code %d (%s)", t.ExitCode, t.Reason))
	}
	return strings.Join(parts, ", ")
}

// nodeFinding fails a new node that is not Ready.
func nodeFinding(n *corev1.Node) (CanaryFinding, bool) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return CanaryFinding{}, false
			}
			return CanaryFinding{Node: n.Name, Reason: "NodeNotReady", Detail: "Ready " + string(c.Status) + strings.TrimSuffix(": "+condDetail(c), ": ")}, true
		}
	}
	return CanaryFinding{Node: n.Name, Reason: "NodeNotReady", Detail: "no Ready condition"}, true
}

func condDetail(c corev1.NodeCondition) string {
	return strings.TrimSpace(strings.TrimSuffix(c.Reason+": "+c.Message, ": "))
}

// unschedulable is the scheduler's message on a pod it could not place.
func unschedulable(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// canaryNodesOf reads AnnotationCanaryNodes (new node -> old node).
func canaryNodesOf(n *corev1.Node) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(n.Annotations[AnnotationCanaryNodes], ",") {
		newNode, old, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if newNode != "" {
			out[newNode] = old
		}
	}
	return out
}

// encodeCanaryNodes writes AnnotationCanaryNodes, sorted.
func encodeCanaryNodes(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for n, old := range m {
		parts = append(parts, n+"="+old)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
