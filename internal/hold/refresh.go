package hold

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// AutoScalingAPI is the part of the Auto Scaling client the hold calls
// (the grants of deploy/hold/iam-policy.json).
type AutoScalingAPI interface {
	DescribeInstanceRefreshes(context.Context, *autoscaling.DescribeInstanceRefreshesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeInstanceRefreshesOutput, error)
	CancelInstanceRefresh(context.Context, *autoscaling.CancelInstanceRefreshInput, ...func(*autoscaling.Options)) (*autoscaling.CancelInstanceRefreshOutput, error)
}

// InstanceRefreshes cancels the instance refreshes of Auto Scaling groups
// on STOP. An instance refresh cannot be paused, and a cancelled one cannot
// be resumed (a new StartInstanceRefresh starts over; with SkipMatching it
// skips the instances already replaced): so WAIT leaves a refresh running
// (and says so once per refresh), and only STOP, the gate having said no
// for --stop-after, cancels it.
//
// A group whose terminations wait at the hold's termination lifecycle hook
// (Hooked) has its refresh truly paused there (LifecycleHooks): it is never
// cancelled. A group without the hook gains nothing from an hour of
// replacing undrained nodes while the gate says WAIT: with NoHookGrace its
// refresh is cancelled once a hold has lasted that long (a cancelled
// refresh restarted with SkipMatching loses nothing), STOP or not.
type InstanceRefreshes struct {
	Client AutoScalingAPI
	Groups []string
	// Hooked says whether a group's terminations wait at the hold's
	// lifecycle hook (nil: none do).
	Hooked func(group string) bool
	// NoHookGrace, when > 0, cancels the refresh of a group without the
	// hook once a hold has lasted this long.
	NoHookGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu        sync.Mutex
	noticed   map[string]bool // refresh ids already reported as running through a WAIT
	cancelled map[string]bool // groups whose refresh this hold cancelled
	holdSince time.Time       // the first Hold decision of this hold
}

// Kind implements Target.
func (*InstanceRefreshes) Kind() string { return "instance-refresh" }

func asgTarget(group string) string { return "asg/" + group }

// active returns the group's Pending or InProgress refresh, if any.
func (t *InstanceRefreshes) active(ctx context.Context, group string) (*astypes.InstanceRefresh, error) {
	// Newest first: the first page holds an active refresh if there is one
	// (one refresh per group is active at a time).
	out, err := t.Client.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String(group)})
	if err != nil {
		return nil, fmt.Errorf("describing the instance refreshes of %s: %w", group, err)
	}
	for i := range out.InstanceRefreshes {
		r := &out.InstanceRefreshes[i]
		switch r.Status {
		case astypes.InstanceRefreshStatusPending, astypes.InstanceRefreshStatusInProgress:
			return r, nil
		}
	}
	return nil, nil
}

// Apply implements Target.
func (t *InstanceRefreshes) Apply(ctx context.Context, d Decision, r *Reporter) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.noticed == nil {
		t.noticed, t.cancelled = map[string]bool{}, map[string]bool{}
	}
	if t.Now == nil {
		t.Now = time.Now
	}
	if d.Verdict == gate.GO {
		t.holdSince = time.Time{}
		for g := range t.cancelled {
			r.Resumed(ctx, asgTarget(g), nil, d, fmt.Sprintf("the gate says GO; the cancelled instance refresh of %s does not resume by itself: start a new one (--preferences SkipMatching=true skips the instances already replaced)", g))
		}
		clear(t.cancelled)
		clear(t.noticed)
		for _, g := range t.Groups {
			r.Active(asgTarget(g), false)
		}
		return nil
	}
	if d.Action != Hold {
		return nil
	}
	now := t.Now()
	if t.holdSince.IsZero() {
		t.holdSince = now
	}
	var errs []error
	for _, g := range t.Groups {
		ref, err := t.active(ctx, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ref == nil {
			r.Active(asgTarget(g), t.cancelled[g])
			continue
		}
		id := aws.ToString(ref.InstanceRefreshId)
		hooked := t.Hooked != nil && t.Hooked(g)
		graceOver := !hooked && t.NoHookGrace > 0 && now.Sub(t.holdSince) >= t.NoHookGrace
		if hooked || d.Verdict != gate.STOP && !graceOver {
			if !t.noticed[id] {
				t.noticed[id] = true
				msg := fmt.Sprintf("instance refresh %s (%s, %d%% done) goes on: an instance refresh cannot be paused; the hold cancels it if the gate has not said GO within --stop-after", id, ref.Status, aws.ToInt32(ref.PercentageComplete))
				switch {
				case hooked:
					msg = fmt.Sprintf("instance refresh %s (%s, %d%% done) is held at the termination lifecycle hook: each instance it terminates waits in Terminating:Wait, its node untouched, until the gate says GO", id, ref.Status, aws.ToInt32(ref.PercentageComplete))
				case t.NoHookGrace > 0:
					msg = fmt.Sprintf("instance refresh %s (%s, %d%% done) goes on: group %s has no termination lifecycle hook, so the hold cannot pause it; it is cancelled if the hold lasts %s", id, ref.Status, aws.ToInt32(ref.PercentageComplete), g, t.NoHookGrace)
				}
				r.Notice(ctx, asgTarget(g), d, msg)
			}
			continue
		}
		_, err = t.Client.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: aws.String(g)})
		var nf *astypes.ActiveInstanceRefreshNotFoundFault
		if errors.As(err, &nf) {
			continue // it ended meanwhile
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cancelling the instance refresh of %s: %w", g, err))
			continue
		}
		t.cancelled[g] = true
		r.Cancelled(ctx, asgTarget(g), d, fmt.Sprintf("instance refresh %s cancelled at %d%% (instances being replaced finish; a cancelled refresh cannot be resumed: start a new one after GO)", id, aws.ToInt32(ref.PercentageComplete)))
	}
	return errors.Join(errs...)
}
