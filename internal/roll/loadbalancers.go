package roll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Taking a node out of its load balancers before its instance ends.
//
// A cordon no longer takes a node out of a Service's load balancer
// (kubernetes/kubernetes#90823); the node label
// node.kubernetes.io/exclude-from-external-load-balancers does: the service
// controller of k8s.io/cloud-provider (controllers/service/controller.go,
// nodeIncludedPredicate: excluded when the label is present and its value
// is not a false boolean) leaves such nodes out of every load balancer, and
// shouldSyncUpdatedNode syncs the load balancers at once when the label
// changes. With an NLB or CLB in instance mode the cloud provider then
// deregisters the node's instance; the target drains (ELBv2: for the target
// group's deregistration delay, 300 s by default; CLB: for its connection
// draining timeout) and only then may the instance end, else new
// connections still reach it until its health checks fail and in-flight
// ones are cut (kubernetes/autoscaler#1907).
//
// The roll sets the label with its cordon (remembering that it did, in
// AnnotationExcluded), removes it whenever it puts a node back (a drain that
// stops, a deregistration that does not finish, --reset), and before it
// terminates an instance waits until no load balancer routes to it any more:
// read from ELBv2 DescribeTargetHealth and ELB DescribeInstanceHealth when
// the provider can (LoadBalancerReader), else for a stated time.

// LabelExcludeFromLoadBalancers is the node label the service controller
// reads (corev1.LabelNodeExcludeBalancers).
const LabelExcludeFromLoadBalancers = corev1.LabelNodeExcludeBalancers

// AnnotationExcluded is "true" on a node the roll labelled
// LabelExcludeFromLoadBalancers (it was not labelled before), so only then
// does the roll remove the label.
const AnnotationExcluded = "upgradeguard.io/roll-lb-excluded"

// ReasonDeregistered is the Event reason of the wait for the load balancers.
const ReasonDeregistered = "RollDeregistered"

// LBTarget is a load balancer that still routes to an instance.
type LBTarget struct {
	// LoadBalancer is the target group's ARN or the classic load
	// balancer's name.
	LoadBalancer string
	// State is the target's state: healthy, initial, unhealthy, draining,
	// unavailable (ELBv2), InService, OutOfService or "draining" (CLB, while
	// its connection draining lasts).
	State string
}

func (t LBTarget) String() string { return t.LoadBalancer + " (" + t.State + ")" }

// ErrLoadBalancersUnreadable is returned by a LoadBalancerReader that may
// not or cannot read the load balancers (no client, access denied).
var ErrLoadBalancersUnreadable = errors.New("load balancer targets cannot be read")

// LoadBalancerReader is a provider that can tell which load balancers still
// route to an instance.
type LoadBalancerReader interface {
	// LoadBalancerTargets returns the load balancers that still route to
	// the instance (registered in any state but unused, or draining), except
	// those attached to its Auto Scaling group: Auto Scaling deregisters the
	// instance from them itself and waits for their draining before it
	// terminates it.
	LoadBalancerTargets(ctx context.Context, inst Instance) ([]LBTarget, error)
}

// DeregistrationOptions bound the wait for the load balancers to let an
// instance go before it is terminated.
type DeregistrationOptions struct {
	// Timeout is how long the roll waits for the targets it can read to be
	// gone (default 15m: the service controller's 100 s node sync, ELBv2's
	// default 300 s deregistration delay, with room); past it the roll stops
	// and puts the node back (uncordoned, the label removed), nothing
	// terminated.
	Timeout time.Duration
	// Wait is how long the roll waits after excluding the node when it
	// cannot read the targets (default 6m: ELBv2's default 300 s
	// deregistration delay after an immediate sync, plus a minute).
	Wait time.Duration
	// Poll is the interval between reads (default 10s).
	Poll time.Duration
}

func (o *DeregistrationOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	if o.Wait <= 0 {
		o.Wait = 6 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 10 * time.Second
	}
}

// DeregistrationError stops a roll whose node's instance stayed in load
// balancers past the timeout.
type DeregistrationError struct {
	Node, Instance string
	Targets        []LBTarget
	Timeout        time.Duration
}

func (e *DeregistrationError) Error() string {
	var ts []string
	for _, t := range e.Targets {
		ts = append(ts, t.String())
	}
	return fmt.Sprintf("node %s: instance %s still routed to by %s %s after it was labelled %s; node put back (uncordoned, label removed), not terminated: does something other than the cloud provider's service controller register it?",
		e.Node, e.Instance, strings.Join(ts, ", "), e.Timeout, LabelExcludeFromLoadBalancers)
}

// ExitCode is 4, as for a drain that cannot finish.
func (e *DeregistrationError) ExitCode() int { return 4 }

// patchMeta sets (nil: removes) labels and annotations, and with
// unschedulable not nil spec.unschedulable, in one merge patch.
func (s stateStore) patchMeta(ctx context.Context, node string, labels, ann map[string]*string, unschedulable *bool) (*corev1.Node, error) {
	meta := map[string]any{}
	if len(ann) > 0 {
		meta["annotations"] = ann
	}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	body := map[string]any{}
	if len(meta) > 0 {
		body["metadata"] = meta
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

// exclusion returns the label and annotation that exclude the node from
// load balancers, or nil when it is already labelled.
func exclusion(n *corev1.Node) (labels, ann map[string]*string) {
	if _, has := n.Labels[LabelExcludeFromLoadBalancers]; has && n.Labels[LabelExcludeFromLoadBalancers] != "false" {
		return nil, nil
	}
	return map[string]*string{LabelExcludeFromLoadBalancers: strp("true")}, map[string]*string{AnnotationExcluded: strp("true")}
}

// inclusion undoes the roll's exclusion of the node (nothing if the roll
// did not label it).
func inclusion(n *corev1.Node) (labels, ann map[string]*string) {
	if n.Annotations[AnnotationExcluded] != "true" {
		return nil, nil
	}
	return map[string]*string{LabelExcludeFromLoadBalancers: nil}, map[string]*string{AnnotationExcluded: nil}
}

// exclude labels the node out of load balancers unless it is already.
func (s stateStore) exclude(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	labels, ann := exclusion(n)
	if labels == nil {
		return n, nil
	}
	return s.patchMeta(ctx, n.Name, labels, ann, nil)
}

// awaitDeregistration excludes the node from load balancers (if it is not
// already) and waits until none routes to its instance. It returns how
// long it waited and the load balancers it saw let the instance go.
func (r *roller) awaitDeregistration(ctx context.Context, n *corev1.Node, inst Instance) (time.Duration, []string, error) {
	if inst.ID == "" || !inst.InService {
		return 0, nil, nil // no instance, or ending already: nothing to route to
	}
	began := r.cfg.Now()
	bctx, cancel := background(ctx)
	updated, err := r.state.exclude(bctx, n)
	cancel()
	switch {
	case apierrors.IsNotFound(err): // the node object is gone; its instance may not be
	case err != nil:
		return 0, nil, err
	default:
		*n = *updated
	}
	o := r.cfg.Deregistration
	reader, ok := r.cfg.Provider.(LoadBalancerReader)
	seen := map[string]bool{}
	var seenList []string
	deadline := began.Add(o.Timeout)
	announced, lastErr := false, ""
	for {
		var targets []LBTarget
		err := ErrLoadBalancersUnreadable
		if ok {
			targets, err = reader.LoadBalancerTargets(ctx, inst)
		}
		switch {
		case errors.Is(err, ErrLoadBalancersUnreadable):
			return r.waitStated(ctx, n, inst, began, err)
		case err != nil && ctx.Err() != nil:
			return r.cfg.Now().Sub(began), seenList, ctx.Err()
		case err != nil:
			if err.Error() != lastErr {
				lastErr = err.Error()
				r.rep.linef(n.Name, "reading the load balancers of instance %s: %v (retrying every %s)", inst.ID, err, o.Poll)
			}
			if !r.cfg.Now().Before(deadline) {
				return r.cfg.Now().Sub(began), seenList, fmt.Errorf("node %s: the load balancers of instance %s could not be read for %s (node put back, not terminated): %w", n.Name, inst.ID, o.Timeout, err)
			}
		case len(targets) == 0:
			took := r.cfg.Now().Sub(began)
			if len(seenList) > 0 {
				r.rep.linef(n.Name, "instance %s out of every load balancer after %s: %s", inst.ID, seconds(took), strings.Join(seenList, ", "))
				r.rep.event(ctx, n, false, ReasonDeregistered, "instance %s out of every load balancer after %s: %s", inst.ID, seconds(took), strings.Join(seenList, ", "))
			}
			return took, seenList, nil
		default:
			for _, t := range targets {
				if !seen[t.LoadBalancer] {
					seen[t.LoadBalancer] = true
					seenList = append(seenList, t.LoadBalancer)
				}
			}
			if !announced {
				announced = true
				var ts []string
				for _, t := range targets {
					ts = append(ts, t.String())
				}
				r.rep.linef(n.Name, "labelled %s; waiting until no load balancer routes to instance %s (at most %s): %s", LabelExcludeFromLoadBalancers, inst.ID, o.Timeout, strings.Join(ts, ", "))
			}
			if !r.cfg.Now().Before(deadline) {
				return r.cfg.Now().Sub(began), seenList, &DeregistrationError{Node: n.Name, Instance: inst.ID, Targets: targets, Timeout: o.Timeout}
			}
		}
		select {
		case <-ctx.Done():
			return r.cfg.Now().Sub(began), seenList, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// waitStated waits the stated time for a deregistration the roll cannot
// read.
func (r *roller) waitStated(ctx context.Context, n *corev1.Node, inst Instance, began time.Time, why error) (time.Duration, []string, error) {
	wait := r.cfg.Deregistration.Wait - r.cfg.Now().Sub(began)
	r.rep.linef(n.Name, "labelled %s; %v, so waiting %s for the cloud provider to deregister instance %s from the Services' load balancers",
		LabelExcludeFromLoadBalancers, why, seconds(max(wait, 0)), inst.ID)
	select {
	case <-ctx.Done():
		return r.cfg.Now().Sub(began), nil, ctx.Err()
	case <-time.After(wait):
	}
	return r.cfg.Now().Sub(began), nil, nil
}

// ELBv2API is the part of the ELBv2 client the AWS provider calls.
type ELBv2API interface {
	DescribeTargetGroups(context.Context, *elasticloadbalancingv2.DescribeTargetGroupsInput, ...func(*elasticloadbalancingv2.Options)) (*elasticloadbalancingv2.DescribeTargetGroupsOutput, error)
	DescribeTargetHealth(context.Context, *elasticloadbalancingv2.DescribeTargetHealthInput, ...func(*elasticloadbalancingv2.Options)) (*elasticloadbalancingv2.DescribeTargetHealthOutput, error)
}

// ELBAPI is the part of the classic ELB client the AWS provider calls.
type ELBAPI interface {
	DescribeLoadBalancers(context.Context, *elasticloadbalancing.DescribeLoadBalancersInput, ...func(*elasticloadbalancing.Options)) (*elasticloadbalancing.DescribeLoadBalancersOutput, error)
	DescribeInstanceHealth(context.Context, *elasticloadbalancing.DescribeInstanceHealthInput, ...func(*elasticloadbalancing.Options)) (*elasticloadbalancing.DescribeInstanceHealthOutput, error)
}

func denied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
			return true
		}
	}
	return false
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// LoadBalancerTargets implements LoadBalancerReader: every instance target
// group's DescribeTargetHealth for the instance, and every classic load
// balancer's DescribeInstanceHealth (1 + target groups + 1 + classic load
// balancers calls, each poll).
func (p *AWS) LoadBalancerTargets(ctx context.Context, inst Instance) ([]LBTarget, error) {
	if p.ELBv2 == nil || p.ELB == nil {
		return nil, fmt.Errorf("%w: no ELB client", ErrLoadBalancersUnreadable)
	}
	attachedTG, attachedCLB := map[string]bool{}, map[string]bool{}
	if inst.Group != "" {
		if g, err := p.group(ctx, inst.Group); err == nil {
			for _, a := range g.TargetGroupARNs {
				attachedTG[a] = true
			}
			for _, a := range g.LoadBalancerNames {
				attachedCLB[a] = true
			}
		}
	}
	var out []LBTarget
	tgs := elasticloadbalancingv2.NewDescribeTargetGroupsPaginator(p.ELBv2, &elasticloadbalancingv2.DescribeTargetGroupsInput{})
	for tgs.HasMorePages() {
		page, err := tgs.NextPage(ctx)
		if err != nil {
			if denied(err) {
				return nil, fmt.Errorf("%w: %v", ErrLoadBalancersUnreadable, err)
			}
			return nil, fmt.Errorf("describing target groups: %w", err)
		}
		for _, tg := range page.TargetGroups {
			arn := aws.ToString(tg.TargetGroupArn)
			if tg.TargetType != elbv2types.TargetTypeEnumInstance || attachedTG[arn] {
				continue
			}
			h, err := p.ELBv2.DescribeTargetHealth(ctx, &elasticloadbalancingv2.DescribeTargetHealthInput{
				TargetGroupArn: aws.String(arn), Targets: []elbv2types.TargetDescription{{Id: aws.String(inst.ID)}}})
			switch {
			case apiCode(err) == "TargetGroupNotFound":
				continue // deleted since the listing
			case denied(err):
				return nil, fmt.Errorf("%w: %v", ErrLoadBalancersUnreadable, err)
			case err != nil:
				return nil, fmt.Errorf("describing the health of %s in %s: %w", inst.ID, arn, err)
			}
			for _, d := range h.TargetHealthDescriptions {
				if d.TargetHealth == nil || d.TargetHealth.State == elbv2types.TargetHealthStateEnumUnused || aws.ToString(d.Target.Id) != inst.ID {
					continue
				}
				out = append(out, LBTarget{LoadBalancer: arn, State: string(d.TargetHealth.State)})
			}
		}
	}
	clbs := elasticloadbalancing.NewDescribeLoadBalancersPaginator(p.ELB, &elasticloadbalancing.DescribeLoadBalancersInput{})
	for clbs.HasMorePages() {
		page, err := clbs.NextPage(ctx)
		if err != nil {
			if denied(err) {
				return nil, fmt.Errorf("%w: %v", ErrLoadBalancersUnreadable, err)
			}
			return nil, fmt.Errorf("describing classic load balancers: %w", err)
		}
		for _, lb := range page.LoadBalancerDescriptions {
			name := aws.ToString(lb.LoadBalancerName)
			if attachedCLB[name] {
				continue
			}
			h, err := p.ELB.DescribeInstanceHealth(ctx, &elasticloadbalancing.DescribeInstanceHealthInput{
				LoadBalancerName: aws.String(name), Instances: []elbtypes.Instance{{InstanceId: aws.String(inst.ID)}}})
			switch {
			case apiCode(err) == "InvalidInstance" || apiCode(err) == "LoadBalancerNotFound":
				continue // not registered (any more), or deleted
			case denied(err):
				return nil, fmt.Errorf("%w: %v", ErrLoadBalancersUnreadable, err)
			case err != nil:
				return nil, fmt.Errorf("describing the health of %s in %s: %w", inst.ID, name, err)
			}
			for _, s := range h.InstanceStates {
				state := aws.ToString(s.State)
				if strings.Contains(aws.ToString(s.Description), "deregistration currently in progress") {
					state = "draining"
				}
				out = append(out, LBTarget{LoadBalancer: name, State: state})
			}
		}
	}
	return out, nil
}
