package roll

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// LaunchError stops a roll whose group could not launch the instance the
// roll waits for: Auto Scaling recorded a failed launch activity, with
// EC2's reason (no capacity of the type in the zone, the vCPU limit, a full
// subnet).
type LaunchError struct {
	Group, Node string
	// Surge: the instance was the surge's, so the old node was not drained
	// and stays in service; else the old instance was terminated already.
	Surge   bool
	Message string // the activity's StatusMessage
}

func (e *LaunchError) Error() string {
	if e.Surge {
		return fmt.Sprintf("group %s could not launch the surge instance for node %s: %s; node %s was uncordoned and stays in service; "+
			"the group's desired capacity stays one higher while Auto Scaling retries: run the roll again to go on with that instance once it launches, or lower the desired capacity by one",
			e.Group, e.Node, e.Message, e.Node)
	}
	return fmt.Sprintf("group %s could not launch a replacement for node %s (its instance is terminated): %s; the group is a node short while Auto Scaling retries: run the roll again to wait for the replacement",
		e.Group, e.Node, e.Message)
}

// ExitCode makes a failed launch exit with 5.
func (e *LaunchError) ExitCode() int { return 5 }

// ShortError ends a roll whose groups do not have as many Ready nodes as
// their desired capacity: the roll is not done.
type ShortError struct {
	Short []string // "group X is N nodes short (...)"
}

func (e *ShortError) Error() string { return "roll not done: " + strings.Join(e.Short, "; ") }

// ExitCode makes a short group exit with 5, as a failed launch.
func (e *ShortError) ExitCode() int { return 5 }

// clockSkew widens the window in which activities count as the roll's:
// AWS stamps them with its clock, the roll compares with its own.
const clockSkew = 5 * time.Second

// waitLaunch waits until the instance the group launched for node old (a
// surge or a replacement) is a Ready node of the selection, and returns the
// instance and the node. The instance is one that entered the group since
// since: first those of its launch activities (a new instance or one from
// its warm pool; a launch into the warm pool is none), then any member
// pending or in service that is not in before (nil: not known); never a
// planned node's nor one claimed by another node of this run: the roll's
// instance, identified by its id, not just any new node. A failed launch
// activity since failSince, with no such instance yet, ends the wait at
// once with a *LaunchError (Surge unset: the caller says); a failed refill
// of the warm pool does not.
//
// An instance claimed that leaves the group (Terminating or gone: Auto
// Scaling replaced it after a failed health check, a spot interruption) is
// given up, said so, and the wait follows the group's next launch, with
// the node timeout counted again from there (up to maxFollow times).
func (r *roller) waitLaunch(parent context.Context, old, group string, since, failSince time.Time, before map[string]bool) (string, string, error) {
	deadline := time.Now().Add(r.cfg.NodeTimeout)
	var mine, seen string
	var mineFromPool bool
	gone := map[string]bool{}
	follows := 0
	defer func() {
		if mine != "" && parent.Err() != nil {
			r.unclaim(mine) // interrupted: a re-run finds it again
		}
	}()
	for {
		ctx, cancel := context.WithDeadline(parent, deadline)
		if mine != "" {
			// Still a member pending or in service?
			if g, err := r.cfg.Provider.Group(ctx, group); err == nil && !slices.Contains(g.InService, mine) {
				state := "is terminating"
				if _, ok := g.Instances[mine]; !ok {
					state = "is gone"
				}
				why := r.terminationCause(ctx, group, mine)
				gone[mine] = true
				follows++
				if follows > maxFollow {
					cancel()
					return "", "", fmt.Errorf("instance %s, the %d%s instance claimed for node %s, left group %s (it %s%s): giving up", mine, follows, ordinal(follows), old, group, state, why)
				}
				r.rep.linef(old, "instance %s left group %s before its node was Ready (it %s%s); following the group's next launch", mine, group, state, why)
				r.noteLeftGroup(old, mine)
				mine, seen = "", ""
				deadline = time.Now().Add(r.cfg.NodeTimeout)
				// A launch that failed before the one given up was retried
				// by then: only a failure from here on stops the wait.
				failSince = time.Now()
			}
		}
		if mine == "" {
			acts, err := r.cfg.Provider.Activities(ctx, group, since.Add(-clockSkew))
			if err == nil {
				var failed *Activity
				var candidates []string
				fromPool := map[string]bool{}
				for _, a := range slices.Backward(acts) { // oldest first
					switch {
					case a.Launch && a.Instance != "" && !a.Failed():
						candidates = append(candidates, a.Instance)
						fromPool[a.Instance] = a.FromWarmPool
					case a.Failed() && !a.Start.Before(failSince.Add(-clockSkew)):
						failed = &a
					}
				}
				// Only an instance still in the group: an older launch
				// within the clock skew may be gone already. The group's
				// members, not the wording of its activities, say which
				// instance entered it.
				if g, err := r.cfg.Provider.Group(ctx, group); err == nil {
					if before != nil {
						for _, id := range g.InService {
							if !before[id] {
								candidates = append(candidates, id)
							}
						}
					}
					for _, id := range candidates {
						if before[id] || r.planned[id] || gone[id] || !slices.Contains(g.InService, id) {
							continue
						}
						if r.claim(id) {
							mine, mineFromPool = id, fromPool[id]
							if fromPool[id] {
								r.rep.linef(old, "instance %s entered group %s from warm pool", id, group)
							}
							break
						}
					}
				}
				if mine == "" && failed != nil {
					cancel()
					msg := failed.Message
					if msg == "" {
						msg = failed.Description
					}
					return "", "", &LaunchError{Group: group, Node: old, Message: msg}
				}
			} else {
				r.cfg.Logger.Warn("could not read the group's scaling activities", "group", group, "err", err)
			}
		}
		if mine != "" {
			// The new node is in the node group, not necessarily in the
			// rest of the selection (a --selector naming the old node).
			nodes, err := listNodes(ctx, r.cfg.Client, r.cfg.Selection.group())
			if err == nil {
				seen = fmt.Sprintf("instance %s launched, no node yet", mine)
				for i := range nodes {
					n := &nodes[i]
					if kube.InstanceID(n.Spec.ProviderID) != mine {
						continue
					}
					if nodeReady(n) {
						r.checkLaunchedFrom(ctx, old, mine, mineFromPool)
						cancel()
						return mine, n.Name, nil
					}
					seen = fmt.Sprintf("instance %s is node %s, not Ready yet", mine, n.Name)
				}
			}
		}
		select {
		case <-ctx.Done():
			cancel()
			if parent.Err() == nil {
				if seen == "" {
					return "", "", fmt.Errorf("group %s launched no instance within %s", group, r.cfg.NodeTimeout)
				}
				return "", "", fmt.Errorf("no Ready node within %s: %s", r.cfg.NodeTimeout, seen)
			}
			return "", "", parent.Err()
		case <-time.After(r.cfg.Poll):
		}
		cancel()
	}
}

// checkLaunchedFrom says when a node's new instance was not launched from
// what its group launches now: an instance taken from a warm pool was
// prepared when it entered the pool, and AWS does not update warm
// instances when the group's launch template changes (AWS, "Update the
// instances in a warm pool"), so a roll for a new template can get the old
// one back.
func (r *roller) checkLaunchedFrom(ctx context.Context, old, id string, fromPool bool) {
	got, err := r.cfg.Provider.Describe(ctx, []string{id})
	inst, ok := got[id]
	if err != nil || !ok || !inst.Outdated() {
		return
	}
	where := "it was launched before the group's launch template changed"
	if fromPool {
		where = "it came from the group's warm pool, prepared before the launch template changed: AWS does not update warm instances; " +
			"replace them (an instance refresh, or delete and re-create the warm pool), then roll again with --only-outdated"
	}
	r.rep.linef(old, "warning: new instance %s was launched from %s, the group launches %s: %s", id, inst.Launch, inst.Current, where)
}

// maxFollow is how many times a wait for a node's new instance follows the
// group's next launch after the instance it claimed left the group.
const maxFollow = 3

func ordinal(n int) string {
	switch n {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

// terminationCause is ": " and the cause of the group's activity that
// terminates instance id, or "" when none says.
func (r *roller) terminationCause(ctx context.Context, group, id string) string {
	acts, err := r.cfg.Provider.Activities(ctx, group, time.Now().Add(-r.cfg.NodeTimeout-clockSkew))
	if err != nil {
		return ""
	}
	for _, a := range acts {
		if !a.Launch && !a.Refill && strings.HasSuffix(a.Description, id) && a.Cause != "" {
			return ": " + a.Cause
		}
	}
	return ""
}

func (r *roller) claim(instance string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claimed[instance] {
		return false
	}
	r.claimed[instance] = true
	return true
}

// noteLeftGroup records that instance, claimed for node old, left its
// group before its node was Ready.
func (r *roller) noteLeftGroup(old, instance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leftGroup == nil {
		r.leftGroup = map[string][]string{}
	}
	r.leftGroup[old] = append(r.leftGroup[old], instance)
}

// takeLeftGroup returns and forgets the instances noteLeftGroup recorded
// for node old.
func (r *roller) takeLeftGroup(old string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.leftGroup[old]
	delete(r.leftGroup, old)
	return out
}

func (r *roller) unclaim(instance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.claimed, instance)
}

// members returns the ids of a group's instances now.
func (r *roller) members(ctx context.Context, group string) (map[string]bool, error) {
	g, err := r.cfg.Provider.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for id := range g.Instances {
		out[id] = true
	}
	return out, nil
}

// holdProcesses suspends the RollProcesses of every group of the plan for
// the roll's duration (see RollProcesses for why).
func (r *roller) holdProcesses(ctx context.Context) error {
	for _, g := range r.groups {
		bctx, cancel := background(ctx)
		held, err := r.cfg.Provider.HoldProcesses(bctx, g)
		cancel()
		if err != nil {
			return fmt.Errorf("before the first node: %w", err)
		}
		if len(held) > 0 {
			r.rep.linef("", "group %s: %s suspended for the roll (resumed at its end)", g, strings.Join(held, ", "))
		}
	}
	return nil
}

// releaseProcesses resumes what holdProcesses suspended, except AZRebalance
// on a group left unbalanced between its zones: resuming it would have Auto
// Scaling terminate a node of the fullest zone without a drain.
func (r *roller) releaseProcesses(ctx context.Context) error {
	var errs []error
	for _, name := range r.groups {
		bctx, cancel := background(ctx)
		var keep []string
		g, err := r.cfg.Provider.Group(bctx, name)
		if err == nil {
			if z := unbalanced(g); z != "" {
				keep = []string{"AZRebalance"}
				r.rep.linef("", "group %s is unbalanced between its zones (%s): AZRebalance stays suspended, since Auto Scaling would now terminate a node of the fullest zone without a drain; "+
					"replace one node of that zone without --surge (the group launches its replacement in the emptiest zone), then run the roll with --reset to resume it", name, z)
			}
		}
		resumed, err := r.cfg.Provider.ReleaseProcesses(bctx, name, keep)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(resumed) > 0 {
			r.rep.linef("", "group %s: %s resumed", name, strings.Join(resumed, ", "))
		}
	}
	return errors.Join(errs...)
}

// unbalanced describes a group whose zones differ by more than one
// instance in service ("" when balanced), as AZRebalance judges.
func unbalanced(g Group) string {
	if len(g.Zones) < 2 {
		return ""
	}
	counts := map[string]int{}
	for _, z := range g.Zones {
		counts[z] = 0
	}
	for _, id := range g.InService {
		counts[g.Instances[id]]++
	}
	lo, hi := -1, 0
	var parts []string
	zones := slices.Sorted(slices.Values(g.Zones))
	for _, z := range zones {
		c := counts[z]
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
		parts = append(parts, fmt.Sprintf("%s: %d", z, c))
	}
	if hi-lo < 2 {
		return ""
	}
	return strings.Join(parts, ", ")
}

// checkGroups makes sure every group of the roll has as many Ready nodes
// as its desired capacity (waiting a little for the last ones), else the
// roll is not done.
func (r *roller) checkGroups(ctx context.Context) error {
	deadline := time.Now().Add(min(r.cfg.NodeTimeout, 2*time.Minute))
	for {
		short, err := r.shortGroups(ctx)
		if err == nil && len(short) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("checking the groups' Ready nodes: %w", err)
			}
			return &ShortError{Short: short}
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.Poll):
		}
	}
}

func (r *roller) shortGroups(ctx context.Context) ([]string, error) {
	list, err := r.cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	byInstance := map[string]*corev1.Node{}
	for i := range list.Items {
		if id := kube.InstanceID(list.Items[i].Spec.ProviderID); id != "" {
			byInstance[id] = &list.Items[i]
		}
	}
	var short []string
	for _, name := range r.groups {
		g, err := r.cfg.Provider.Group(ctx, name)
		if err != nil {
			return nil, err
		}
		ready := 0
		var notReady []string
		for _, id := range g.InService {
			n := byInstance[id]
			switch {
			case n == nil:
				notReady = append(notReady, id+" (no node)")
			case nodeReady(n):
				ready++
			default:
				notReady = append(notReady, id+" ("+n.Name+" not Ready)")
			}
		}
		if missing := int(g.Desired) - ready; missing > 0 {
			sort.Strings(notReady)
			why := fmt.Sprintf("group %s is %d node(s) short: desired capacity %d, %d Ready node(s)", name, missing, g.Desired, ready)
			if len(notReady) > 0 {
				why += "; " + strings.Join(notReady, ", ")
			}
			short = append(short, why)
		}
	}
	return short, nil
}
