package awsfake

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Instance refresh (StartInstanceRefresh, DescribeInstanceRefreshes,
// CancelInstanceRefresh) as the Auto Scaling API documents it
// (types.InstanceRefresh.Status of autoscaling v1.80.0): a refresh is
// Pending, then InProgress while it replaces the group's instances a batch
// at a time, keeping MinHealthyPercentage of the desired capacity in
// service (default 90%, so one instance at a time in a small group), and
// ends Successful. A cancel moves a Pending or InProgress refresh to
// Cancelling: the batch already terminating finishes (its replacements
// launch), no new batch starts, and the refresh ends Cancelled. A cancelled
// refresh cannot be resumed: a new StartInstanceRefresh starts over. One
// refresh per group is active (Pending, InProgress, Cancelling) at a time;
// a second start is refused with InstanceRefreshInProgress, a cancel
// without a Pending or InProgress refresh with ActiveInstanceRefreshNotFound.
// Rollback, bake time, checkpoints, warm pools and the desired
// configuration are not modelled.

// InstanceRefresh is an instance refresh as DescribeInstanceRefreshes
// reports it.
type InstanceRefresh struct {
	ID, Group            string
	Status, StatusReason string
	StartTime, EndTime   time.Time
	// PercentageComplete is the share of InstancesToUpdate replaced (0-100).
	PercentageComplete int
	// InstancesToUpdate are the instances not yet replaced.
	InstancesToUpdate    int
	MinHealthyPercentage int
	SkipMatching         bool
}

// InstanceRefreshSpec is a StartInstanceRefresh's preferences.
type InstanceRefreshSpec struct {
	// MinHealthyPercentage of the desired capacity stays in service (default
	// 90; 0 replaces the whole group at once).
	MinHealthyPercentage *int
	// SkipMatching leaves out instances already on the group's launch
	// template version.
	SkipMatching bool
}

// refreshes is an account's instance refreshes, newest last per group.
type refreshes struct {
	byGroup map[string][]*refresh
	step    time.Duration
}

type refresh struct {
	InstanceRefresh
	seq     int // position in the group's list: newer is higher
	total   int
	pending []string // instance ids still to replace, in order
	batch   []string // instances of the batch being replaced
}

func (r *refresh) active() bool {
	return r.Status == "Pending" || r.Status == "InProgress" || r.Status == "Cancelling"
}

// refreshStep is how long a refresh waits between its steps (start, each
// check of a batch's replacements) unless SetInstanceRefreshStep changed it.
const refreshStep = time.Second

// SetInstanceRefreshStep sets how long an instance refresh waits between
// its steps: from Pending to its first batch, and between checks of a
// batch's replacements.
func (a *Account) SetInstanceRefreshStep(d time.Duration) {
	a.lock()
	defer a.unlock()
	a.refreshes.step = d
}

func (a *Account) refreshStep() time.Duration {
	if a.refreshes.step > 0 {
		return a.refreshes.step
	}
	return refreshStep
}

// StartInstanceRefresh starts a refresh of a group, as the API call does,
// and returns its id.
func (a *Account) StartInstanceRefresh(group string, spec InstanceRefreshSpec) (string, error) {
	a.lock()
	defer a.unlock()
	r, aerr := a.startRefresh(group, spec)
	if aerr != nil {
		return "", aerr
	}
	return r.ID, nil
}

// CancelInstanceRefresh cancels a group's Pending or InProgress refresh, as
// the API call does, and returns its id.
func (a *Account) CancelInstanceRefresh(group string) (string, error) {
	a.lock()
	defer a.unlock()
	r, aerr := a.cancelRefresh(group)
	if aerr != nil {
		return "", aerr
	}
	return r.ID, nil
}

// InstanceRefreshes returns a group's refreshes, newest first.
func (a *Account) InstanceRefreshes(group string) []InstanceRefresh {
	a.lock()
	defer a.unlock()
	var out []InstanceRefresh
	for _, r := range slices.Backward(a.refreshes.byGroup[group]) {
		out = append(out, r.InstanceRefresh)
	}
	return out
}

func (a *Account) startRefresh(group string, spec InstanceRefreshSpec) (*refresh, *apiError) {
	g := a.asgs[group]
	if g == nil {
		return nil, errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	for _, r := range a.refreshes.byGroup[group] {
		if r.active() {
			return nil, errf(400, "InstanceRefreshInProgress", "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.")
		}
	}
	minHealthy := 90
	if spec.MinHealthyPercentage != nil {
		minHealthy = *spec.MinHealthyPercentage
	}
	if minHealthy < 0 || minHealthy > 100 {
		return nil, errf(400, "ValidationError", "MinHealthyPercentage %d is outside 0 to 100.", minHealthy)
	}
	r := &refresh{InstanceRefresh: InstanceRefresh{
		ID: uuidish(a.newID("ir")), Group: group, Status: "Pending", StartTime: a.now(),
		MinHealthyPercentage: minHealthy, SkipMatching: spec.SkipMatching,
	}}
	if a.refreshes.byGroup == nil {
		a.refreshes.byGroup = map[string][]*refresh{}
	}
	r.seq = len(a.refreshes.byGroup[group])
	a.refreshes.byGroup[group] = append(a.refreshes.byGroup[group], r)
	a.after(a.refreshStep(), func() { a.refreshBegin(g, r) })
	return r, nil
}

// refreshBegin picks the instances to replace and starts the first batch.
func (a *Account) refreshBegin(g *asg, r *refresh) {
	if r.Status != "Pending" {
		return // cancelled meanwhile
	}
	current := ""
	if lt := a.lts[g.LaunchTemplateID]; lt != nil {
		if v, ok := lt.version(g.LaunchTemplateVersion); ok {
			current = fmt.Sprint(v.Number)
		}
	}
	for _, i := range a.live(g) {
		if r.SkipMatching && current != "" && i.LaunchTemplateVersion == current {
			continue
		}
		r.pending = append(r.pending, i.ID)
	}
	slices.Sort(r.pending)
	r.total = len(r.pending)
	r.Status = "InProgress"
	r.update()
	a.refreshStepFn(g, r)()
}

func (r *refresh) update() {
	r.InstancesToUpdate = len(r.pending) + len(r.batch)
	if r.total == 0 {
		r.PercentageComplete = 100
	} else {
		r.PercentageComplete = 100 * (r.total - r.InstancesToUpdate) / r.total
	}
}

// refreshStepFn returns the step that runs under the lock: when the
// batch's replacements are all in service, it ends the refresh (done or
// cancelled) or terminates the next batch; otherwise it checks again later.
func (a *Account) refreshStepFn(g *asg, r *refresh) func() {
	return func() {
		if a.asgs[g.Name] != g {
			r.Status, r.StatusReason, r.EndTime = "Failed", "The Auto Scaling group was deleted.", a.now()
			return
		}
		running := 0
		for _, i := range a.live(g) {
			if i.State == "running" {
				running++
			}
		}
		settled := running >= int(g.Desired) && g.inflight == 0 && !a.anyWaiting(r.batch) // scaling_lifecyclehooks.go
		if !settled {
			a.after(a.refreshStep(), a.refreshStepFn(g, r))
			return
		}
		r.batch = nil
		switch {
		case r.Status == "Cancelling":
			r.Status, r.EndTime = "Cancelled", a.now()
			r.StatusReason = "The instance refresh was cancelled by a user request; it cannot be resumed."
			r.update()
			return
		case len(r.pending) == 0:
			r.Status, r.EndTime = "Successful", a.now()
			r.update()
			return
		}
		size := int(g.Desired) * (100 - r.MinHealthyPercentage) / 100
		if size < 1 {
			size = 1
		}
		for len(r.batch) < size && len(r.pending) > 0 {
			id := r.pending[0]
			r.pending = r.pending[1:]
			if i := a.instances[id]; i == nil || i.ASG != g.Name || (i.State != "pending" && i.State != "running") {
				continue // gone meanwhile: nothing to replace
			}
			if _, _, aerr := a.terminateInASG(id, false); aerr == nil {
				r.batch = append(r.batch, id)
			}
		}
		r.update()
		a.after(a.refreshStep(), a.refreshStepFn(g, r))
	}
}

func (a *Account) cancelRefresh(group string) (*refresh, *apiError) {
	if a.asgs[group] == nil {
		return nil, errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	for _, r := range a.refreshes.byGroup[group] {
		switch r.Status {
		case "Pending":
			r.Status, r.EndTime = "Cancelled", a.now()
			r.StatusReason = "The instance refresh was cancelled by a user request before it started."
			return r, nil
		case "InProgress":
			r.Status = "Cancelling"
			r.StatusReason = "Cancelling the instance refresh: waiting for the instances being replaced."
			return r, nil
		}
	}
	return nil, errf(400, "ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found for Auto Scaling group %s", group)
}

// ---- the query protocol handlers ----

func asStartInstanceRefresh(c *call) (any, *apiError) {
	var spec InstanceRefreshSpec
	if c.form.has("Preferences.MinHealthyPercentage") {
		n, _, aerr := c.form.int("Preferences.MinHealthyPercentage")
		if aerr != nil {
			return nil, aerr
		}
		spec.MinHealthyPercentage = &n
	}
	spec.SkipMatching = c.form.bool("Preferences.SkipMatching")
	if s := c.form.str("Strategy"); s != "" && s != "Rolling" {
		return nil, errf(400, "ValidationError", "Strategy %q is not valid; the only strategy is Rolling.", s)
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	r, aerr := a.startRefresh(c.form.str("AutoScalingGroupName"), spec)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.leaf("InstanceRefreshId", r.ID)
	return w, nil
}

func asCancelInstanceRefresh(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	r, aerr := a.cancelRefresh(c.form.str("AutoScalingGroupName"))
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.leaf("InstanceRefreshId", r.ID)
	return w, nil
}

var asBadRefreshToken = errf(400, "InvalidNextToken", "The token provided is not valid.")

func asDescribeInstanceRefreshes(c *call) (any, *apiError) {
	group := c.form.str("AutoScalingGroupName")
	if group == "" {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null")
	}
	size, aerr := c.pageSize("MaxRecords")
	if aerr != nil {
		return nil, aerr
	}
	ids := c.form.list("InstanceRefreshIds.member")
	a := c.acct
	a.lock()
	defer a.unlock()
	// Newest first, as AWS lists them; the page key keeps that order.
	var all []*refresh
	for _, r := range slices.Backward(a.refreshes.byGroup[group]) {
		if len(ids) == 0 || slices.Contains(ids, r.ID) {
			all = append(all, r)
		}
	}
	key := func(r *refresh) string { return fmt.Sprintf("%010d", 1_000_000_000-r.seq) }
	slices.SortStableFunc(all, func(x, y *refresh) int { return strings.Compare(key(x), key(y)) })
	page, next, aerr := paginate(all, key, c.form.str("NextToken"), size, asBadRefreshToken)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("InstanceRefreshes", "member", len(page), func(k int) {
		r := page[k]
		w.leaf("InstanceRefreshId", r.ID)
		w.leaf("AutoScalingGroupName", r.Group)
		w.leaf("Status", r.Status)
		w.opt("StatusReason", r.StatusReason)
		w.time("StartTime", r.StartTime)
		w.time("EndTime", r.EndTime)
		w.int("PercentageComplete", int64(r.PercentageComplete))
		w.int("InstancesToUpdate", int64(r.InstancesToUpdate))
		w.elem("Preferences", func() {
			w.int("MinHealthyPercentage", int64(r.MinHealthyPercentage))
			w.bool("SkipMatching", r.SkipMatching)
		})
	})
	w.opt("NextToken", next)
	return w, nil
}
