package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/smithy-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

// Holding terminations at an Auto Scaling termination lifecycle hook.
//
// A hook on autoscaling:EC2_INSTANCE_TERMINATING makes every termination
// the group decides (instance refresh, scale-in, AZRebalance, a
// health-check replacement, TerminateInstanceInAutoScalingGroup) wait in
// Terminating:Wait, the EC2 instance still running, until
// CompleteLifecycleAction or the hook's heartbeat timeout, which
// RecordLifecycleActionHeartbeat restarts, up to the global timeout of 100
// heartbeat timeouts or 48 hours, whichever is less; then the hook's
// default result applies, and for a termination both CONTINUE and ABANDON
// terminate (AWS's EC2 Auto Scaling user guide, "Amazon EC2 Auto Scaling
// lifecycle hooks"; API reference, API_LifecycleHook). An instance refresh
// waits for it.
//
// LifecycleHooks takes charge of one hook (HookName) on its groups: while
// the gate does not say GO it keeps each waiting instance waiting
// (heartbeats); on GO it takes the instance's node out with the roll's code
// (roll.TakeOut: cordon, load balancer exclusion, drain, the wait for the
// load balancers) and completes the action with CONTINUE. An instance with
// no node is completed at once. One node is taken out at a time, as the
// roll does, and the gate is asked again before the next.

// DefaultLifecycleHookName is the hook the hold takes charge of unless told
// another.
const DefaultLifecycleHookName = "upgradeguard-hold"

// DefaultHeartbeatTimeout is the heartbeat timeout of the hook the hold
// creates: a controller that dies delays a termination by at most this
// long (the default result is CONTINUE), and the global timeout is 100 x
// 900 s = 25 h.
const DefaultHeartbeatTimeout = 15 * time.Minute

// LifecycleHookAPI is the part of the Auto Scaling client LifecycleHooks
// calls (the grants of deploy/hold/iam-policy.json).
type LifecycleHookAPI interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLifecycleHooks(context.Context, *autoscaling.DescribeLifecycleHooksInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
	PutLifecycleHook(context.Context, *autoscaling.PutLifecycleHookInput, ...func(*autoscaling.Options)) (*autoscaling.PutLifecycleHookOutput, error)
	CompleteLifecycleAction(context.Context, *autoscaling.CompleteLifecycleActionInput, ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error)
	RecordLifecycleActionHeartbeat(context.Context, *autoscaling.RecordLifecycleActionHeartbeatInput, ...func(*autoscaling.Options)) (*autoscaling.RecordLifecycleActionHeartbeatOutput, error)
}

// LifecycleHooks is the target that holds terminations at a termination
// lifecycle hook until the gate says GO. Apply is called every interval;
// an instance that enters Terminating:Wait is seen within one interval.
type LifecycleHooks struct {
	Client LifecycleHookAPI
	Kube   kubernetes.Interface
	Groups []string
	// HookName is the hook taken charge of (default
	// DefaultLifecycleHookName); Create makes the hold create it on a group
	// that lacks it, with HeartbeatTimeout (default
	// DefaultHeartbeatTimeout) and the default result CONTINUE.
	HookName         string
	Create           bool
	HeartbeatTimeout time.Duration
	// Interval is the policy's interval, how often Apply runs: a hook found
	// with a heartbeat timeout of three intervals or less cannot be kept
	// waiting reliably, and the hold says so (0: not checked).
	Interval time.Duration
	// TakeOut configures the take-out (its Client defaults to Kube).
	TakeOut roll.TakeOutOptions
	Logger  *slog.Logger
	Now     func() time.Time

	mu      sync.Mutex
	hooks   map[string]time.Duration // group -> its hook's heartbeat timeout (0: none)
	global  map[string]time.Duration // group -> its hook's global timeout
	checked map[string]time.Time     // group -> when its hook was last read
	held    map[string]*heldInstance // instance id -> its action
	running bool                     // a take-out is under way
}

type heldInstance struct {
	id, group, node string
	seen, beat      time.Time
	foreign         bool      // not waiting for our hook, at the last probe
	probed          time.Time // when foreign was last found
	takingOut, done bool
	reported        bool // the hold was reported
	lastErr         string
}

// Kind implements Target.
func (*LifecycleHooks) Kind() string { return "lifecycle-hook" }

func (t *LifecycleHooks) init() {
	if t.held == nil {
		t.hooks, t.global, t.held = map[string]time.Duration{}, map[string]time.Duration{}, map[string]*heldInstance{}
		t.checked = map[string]time.Time{}
	}
	if t.HookName == "" {
		t.HookName = DefaultLifecycleHookName
	}
	if t.HeartbeatTimeout <= 0 {
		t.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.Now == nil {
		t.Now = time.Now
	}
	if t.TakeOut.Client == nil {
		t.TakeOut.Client = t.Kube
	}
}

// hookRecheck is how often a hook found is read again: one deleted (by a
// person, by a tool applying the group's definition) holds nothing, and the
// group's instance refresh must be cancelled again on a long hold.
const hookRecheck = time.Minute

func hookTarget(group string) string { return "asg-hook/" + group }

// ensureHook reads (and with Create makes) the group's hook; it returns
// its heartbeat timeout, 0 when the group has none.
func (t *LifecycleHooks) ensureHook(ctx context.Context, group string, d Decision, r *Reporter) (time.Duration, error) {
	prev, known := t.hooks[group]
	if known && prev > 0 && t.Now().Sub(t.checked[group]) < hookRecheck {
		return prev, nil
	}
	out, err := t.Client.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{
		AutoScalingGroupName: aws.String(group), LifecycleHookNames: []string{t.HookName}})
	if err != nil {
		return 0, fmt.Errorf("describing the lifecycle hooks of %s: %w", group, err)
	}
	for _, h := range out.LifecycleHooks {
		if aws.ToString(h.LifecycleHookName) == t.HookName && aws.ToString(h.LifecycleTransition) == "autoscaling:EC2_INSTANCE_TERMINATING" {
			hb := time.Duration(aws.ToInt32(h.HeartbeatTimeout)) * time.Second
			t.hooks[group], t.global[group], t.checked[group] = hb, time.Duration(aws.ToInt32(h.GlobalTimeout))*time.Second, t.Now()
			if t.Interval > 0 && hb/3 <= t.Interval && hb != prev {
				// Heartbeats go out at an evaluation, every interval: with
				// a heartbeat timeout of three intervals or less a late
				// evaluation lets the timeout pass, and AWS applies the
				// default result, which for a termination terminates
				// (undrained).
				r.Notice(ctx, hookTarget(group), d, fmt.Sprintf("the termination lifecycle hook %s of group %s has a heartbeat timeout of %s, not more than three of the policy's intervals (%s): a held instance may time out (default result %s) and terminate undrained; raise the hook's heartbeat timeout above %s or shorten the interval",
					t.HookName, group, hb, t.Interval, aws.ToString(h.DefaultResult), 3*t.Interval))
			}
			return hb, nil
		}
	}
	if !t.Create {
		if !known || prev > 0 {
			t.hooks[group] = 0
			r.Notice(ctx, hookTarget(group), d, fmt.Sprintf("group %s has no termination lifecycle hook %s: its terminations are not held (create it, or run with --aws.create-lifecycle-hook)", group, t.HookName))
		}
		return 0, nil
	}
	hbs := int32(t.HeartbeatTimeout / time.Second)
	_, err = t.Client.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String(group), LifecycleHookName: aws.String(t.HookName),
		LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
		HeartbeatTimeout:    aws.Int32(hbs), DefaultResult: aws.String("CONTINUE"),
		NotificationMetadata: aws.String("upgradeguard gate hold: the node is drained before the instance terminates; CONTINUE on timeout so a dead controller never wedges the group"),
	})
	if err != nil {
		return 0, fmt.Errorf("creating the lifecycle hook %s on %s: %w", t.HookName, group, err)
	}
	t.Logger.Info("created the termination lifecycle hook", "group", group, "hook", t.HookName, "heartbeat_timeout", t.HeartbeatTimeout, "default_result", "CONTINUE")
	t.hooks[group], t.checked[group] = t.HeartbeatTimeout, t.Now()
	t.global[group] = min(100*t.HeartbeatTimeout, 48*time.Hour)
	return t.HeartbeatTimeout, nil
}

// waiting lists the groups' instances in Terminating:Wait, by group.
func (t *LifecycleHooks) waiting(ctx context.Context, groups []string) (map[string][]string, error) {
	out := map[string][]string{}
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(t.Client, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: groups})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing groups %s: %w", strings.Join(groups, ", "), err)
		}
		for _, g := range page.AutoScalingGroups {
			for _, i := range g.Instances {
				if i.LifecycleState == astypes.LifecycleStateTerminatingWait {
					out[aws.ToString(g.AutoScalingGroupName)] = append(out[aws.ToString(g.AutoScalingGroupName)], aws.ToString(i.InstanceId))
				}
			}
		}
	}
	return out, nil
}

// AnnotationHookWaitSince records on a node when the hold first saw its
// instance ("i-... RFC3339") in Terminating:Wait at the hook, so that a
// hold that restarts or a new leader counts the hook's global timeout from
// then, not from its own first sight (AWS counts it from the start of the
// wait; heartbeats do not extend it).
const AnnotationHookWaitSince = "upgradeguard.io/hold-hook-wait-since"

type hookNode struct {
	name  string
	since time.Time // from AnnotationHookWaitSince, zero without it
}

// nodesByInstance maps instance ids to their nodes from spec.providerID
// (aws:///zone/i-...).
func (t *LifecycleHooks) nodesByInstance(ctx context.Context) (map[string]hookNode, error) {
	nodes, err := t.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	out := map[string]hookNode{}
	for _, n := range nodes.Items {
		if id := kube.InstanceID(n.Spec.ProviderID); id != "" {
			hn := hookNode{name: n.Name}
			if v, ok := strings.CutPrefix(n.Annotations[AnnotationHookWaitSince], id+" "); ok {
				if since, err := time.Parse(time.RFC3339, v); err == nil {
					hn.since = since
				}
			}
			out[id] = hn
		}
	}
	return out, nil
}

// recordSince annotates the node with when its instance was first seen
// waiting.
func (t *LifecycleHooks) recordSince(ctx context.Context, h *heldInstance) error {
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		AnnotationHookWaitSince: h.id + " " + h.seen.UTC().Format(time.RFC3339)}}})
	if err != nil {
		return err
	}
	if _, err := t.Kube.CoreV1().Nodes().Patch(ctx, h.node, types.MergePatchType, raw, metav1.PatchOptions{FieldManager: eventSource}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("node %s: %w", h.node, err)
	}
	return nil
}

func noAction(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "No active Lifecycle Action")
}

func (t *LifecycleHooks) heartbeat(ctx context.Context, h *heldInstance) error {
	_, err := t.Client.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String(h.group), LifecycleHookName: aws.String(t.HookName), InstanceId: aws.String(h.id)})
	if err == nil {
		h.beat = t.Now()
	}
	return err
}

func (t *LifecycleHooks) complete(ctx context.Context, h *heldInstance) error {
	_, err := t.Client.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(h.group), LifecycleHookName: aws.String(t.HookName), InstanceId: aws.String(h.id),
		LifecycleActionResult: aws.String("CONTINUE")})
	if noAction(err) {
		return nil // ended meanwhile (a timeout, a person)
	}
	return err
}

// Apply implements Target.
func (t *LifecycleHooks) Apply(ctx context.Context, d Decision, r *Reporter) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	var errs []error
	var groups []string
	for _, g := range t.Groups {
		hb, err := t.ensureHook(ctx, g, d, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if hb > 0 {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return errors.Join(errs...)
	}
	waiting, err := t.waiting(ctx, groups)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	now := t.Now()
	present := map[string]bool{}
	for _, ids := range waiting {
		for _, id := range ids {
			present[id] = true
		}
	}
	for id, h := range t.held {
		if !present[id] && !h.takingOut {
			delete(t.held, id)
		}
	}
	if len(present) == 0 {
		for _, g := range groups {
			r.Active(hookTarget(g), false)
		}
		return errors.Join(errs...)
	}
	nodes, err := t.nodesByInstance(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, g := range groups {
		hb := t.hooks[g]
		held := 0
		for _, id := range waiting[g] {
			h := t.held[id]
			if h == nil {
				hn := nodes[id]
				h = &heldInstance{id: id, group: g, node: hn.name, seen: now}
				if !hn.since.IsZero() && hn.since.Before(now) {
					h.seen = hn.since // seen by an earlier run of the hold
				} else if hn.name != "" {
					if err := t.recordSince(ctx, h); err != nil {
						errs = append(errs, fmt.Errorf("recording when instance %s started waiting: %w", id, err))
					}
				}
				t.held[id] = h
				// The first heartbeat also tells whether it waits for our hook.
				if err := t.heartbeat(ctx, h); noAction(err) {
					h.foreign, h.probed = true, now
				} else if err != nil {
					errs = append(errs, fmt.Errorf("heartbeat of %s: %w", id, err))
				}
			} else if h.foreign && now.Sub(h.probed) >= hb/3 {
				// "No active Lifecycle Action" may be Auto Scaling's
				// eventual consistency right after the instance entered
				// Terminating:Wait, not another hook's wait: probe again
				// while it waits, or its action times out and AWS
				// terminates it undrained.
				if err := t.heartbeat(ctx, h); err == nil {
					h.foreign = false
				} else if noAction(err) {
					h.probed = now
				} else {
					errs = append(errs, fmt.Errorf("heartbeat of %s: %w", id, err))
				}
			}
			if h.foreign || h.done {
				continue
			}
			if h.node == "" {
				if err := t.complete(ctx, h); err != nil {
					errs = append(errs, fmt.Errorf("completing the lifecycle action of %s: %w", id, err))
					continue
				}
				h.done = true
				t.Logger.Info("completed the lifecycle action of an instance without a node", "group", g, "instance", id, "result", "CONTINUE")
				continue
			}
			// Heartbeat a third of the timeout after the last one: the
			// interval must be shorter than that (checked by the command).
			if now.Sub(h.beat) >= hb/3 {
				if err := t.heartbeat(ctx, h); err != nil && !noAction(err) {
					errs = append(errs, fmt.Errorf("heartbeat of %s: %w", id, err))
				}
			}
			if h.takingOut {
				held++
				continue
			}
			// Near the global timeout AWS would terminate it undrained: take
			// the node out rather than let that happen. Take-outs run one at
			// a time and each may last TakeOut.MaxDuration (30 min by
			// default), so start early enough for every instance held before
			// AWS ends the wait (the global timeout counts from the start of
			// the wait, heartbeats do not extend it: AWS user guide,
			// "Complete a lifecycle action").
			late := t.global[g] > 0 && now.Sub(h.seen) >= t.global[g]-2*hb-time.Duration(t.queued())*t.TakeOut.MaxDuration()
			if (d.Verdict == gate.GO || late) && !t.running {
				t.running, h.takingOut = true, true
				held++
				why := "the gate says GO"
				if late {
					why = fmt.Sprintf("the hook's global timeout (%s) is near, the gate still says %s", t.global[g], d.Verdict)
				}
				r.Resumed(ctx, hookTarget(g), &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: h.node}, d,
					fmt.Sprintf("instance %s (node %s) held in Terminating:Wait since %s: %s; cordoning, draining and taking it out of the load balancers, then CompleteLifecycleAction CONTINUE", id, h.node, h.seen.UTC().Format(time.RFC3339), why))
				go t.takeOut(context.WithoutCancel(ctx), h)
				continue
			}
			held++
			if !h.reported {
				h.reported = true
				r.Paused(ctx, hookTarget(g), &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: h.node}, d,
					fmt.Sprintf("instance %s (node %s) held in Terminating:Wait at lifecycle hook %s until the gate says GO (heartbeat every %s)", id, h.node, t.HookName, hb/3))
			}
		}
		r.Active(hookTarget(g), held > 0)
	}
	return errors.Join(errs...)
}

// queued counts the held instances with a node still to take out: the
// take-outs that may run, one at a time, before the global timeout.
func (t *LifecycleHooks) queued() int {
	n := 0
	for _, h := range t.held {
		if !h.foreign && !h.done && h.node != "" {
			n++
		}
	}
	return n
}

// takeOut drains the node and completes the action; a failure leaves the
// instance waiting, retried at the next GO.
func (t *LifecycleHooks) takeOut(ctx context.Context, h *heldInstance) {
	err := roll.TakeOut(ctx, t.TakeOut, h.node, roll.Instance{ID: h.id, Group: h.group, InService: true})
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		err = t.complete(ctx, h)
	}
	t.running, h.takingOut = false, false
	if err != nil {
		if err.Error() != h.lastErr {
			t.Logger.Warn("could not take the node out; retried at the next GO", "instance", h.id, "node", h.node, "err", err)
		}
		h.lastErr = err.Error()
		return
	}
	h.done = true
	t.Logger.Info("node taken out; lifecycle action completed", "group", h.group, "instance", h.id, "node", h.node, "result", "CONTINUE")
}

// Holding says which instances the hold keeps at the hook now (for tests
// and the status).
func (t *LifecycleHooks) Holding() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for id, h := range t.held {
		if !h.foreign && !h.done {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Hooked says whether the group's terminations wait at the hook the hold
// takes charge of (known after the first Apply).
func (t *LifecycleHooks) Hooked(group string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hooks[group] > 0
}
