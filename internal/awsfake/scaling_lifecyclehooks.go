package awsfake

import (
	"maps"
	"slices"
	"time"
)

// (Registered after query.go's init: the file name keeps that order.)
//
// Termination lifecycle hooks (PutLifecycleHook, DescribeLifecycleHooks,
// DeleteLifecycleHook, CompleteLifecycleAction,
// RecordLifecycleActionHeartbeat) as AWS's EC2 Auto Scaling user guide
// ("Amazon EC2 Auto Scaling lifecycle hooks", "Complete a lifecycle action")
// and API reference (API_PutLifecycleHook, API_LifecycleHook,
// API_CompleteLifecycleAction, API_RecordLifecycleActionHeartbeat)
// describe them:
//
//   - A hook on autoscaling:EC2_INSTANCE_TERMINATING makes every
//     termination the group decides (TerminateInstanceInAutoScalingGroup,
//     a scale-in, an instance refresh's batch, AZRebalance, a health-check
//     replacement) stop in Terminating:Wait: the EC2 instance keeps
//     running, DescribeAutoScalingGroups reports it Terminating:Wait, and
//     its termination activity is MidLifecycleAction (types.ScalingActivityStatusCode of autoscaling v1.80.0).
//   - The instance waits until CompleteLifecycleAction (by instance id or
//     by the action's token) or until HeartbeatTimeout (30-7200 s, default
//     3600) passes without RecordLifecycleActionHeartbeat; then the hook's
//     DefaultResult applies (default ABANDON). For a termination both
//     results terminate the instance; ABANDON also skips the group's other
//     hooks, CONTINUE waits for them.
//   - A heartbeat restarts the heartbeat timeout, but an instance never
//     waits longer than the GlobalTimeout: 100 x HeartbeatTimeout or 172800
//     s (48 h), whichever is smaller; then the default result applies.
//   - An instance refresh counts an instance as replaced only once it has
//     left Terminating:Wait, so a refresh waits on the hook.
//   - An EC2 TerminateInstances call and a forced group deletion do not go
//     through the hooks (the group takes no part in them).
//
// Simplified: the instance no longer counts toward the group's capacity
// while it waits, so the group launches its replacement at once; launch
// hooks (EC2_INSTANCE_LAUNCHING) are stored and described but launches do
// not wait on them (no Pending:Wait); notifications (SNS, SQS, EventBridge)
// are not sent. SetLifecycleHookSecond shortens the hooks' seconds for
// tests.

// Lifecycle transitions and action results.
const (
	TransitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
	TransitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	ResultContinue        = "CONTINUE"
	ResultAbandon         = "ABANDON"
	// StateTerminatingWait is an instance's lifecycle state while a
	// termination hook holds it.
	StateTerminatingWait = "Terminating:Wait"
)

// LifecycleHook is a group's lifecycle hook as PutLifecycleHook takes it
// and DescribeLifecycleHooks reports it.
type LifecycleHook struct {
	Name, Group string
	Transition  string // TransitionTerminating or TransitionLaunching
	// HeartbeatTimeout in seconds, 30 to 7200 (0: AWS's default, 3600).
	HeartbeatTimeout int
	// DefaultResult is CONTINUE or ABANDON ("": AWS's default, ABANDON).
	DefaultResult        string
	NotificationMetadata string
}

// GlobalTimeout is how long, in seconds, an instance can wait at the hook:
// 100 x HeartbeatTimeout or 48 hours, whichever is smaller
// (API_LifecycleHook).
func (h LifecycleHook) GlobalTimeout() int { return min(100*h.HeartbeatTimeout, 172800) }

// LifecycleAction is an instance waiting at a group's hooks.
type LifecycleAction struct {
	Instance, Group string
	// Hooks are the hooks still to complete, Token their action's token.
	Hooks []string
	Token string
	Since time.Time
}

// lifecycle is an account's hooks and waiting instances.
type lifecycle struct {
	hooks   map[*asg][]*LifecycleHook
	waits   map[string]*lifecycleWait // by instance id
	second  time.Duration             // one hook second (SetLifecycleHookSecond)
	bypass  bool                      // a wait ended: terminate for real
	history []LifecycleEnd
}

// LifecycleEnd records how an instance's wait at the hooks ended.
type LifecycleEnd struct {
	Instance, Group string
	// Result is CONTINUE or ABANDON; How is "completed", "heartbeat
	// timeout" or "global timeout".
	Result, How string
	Waited      time.Duration
	Heartbeats  int
}

type lifecycleWait struct {
	LifecycleAction
	g          *asg
	inst       *Instance
	deadline   time.Time      // global timeout
	gen        map[string]int // per hook, bumped by its heartbeats: older timers do nothing
	heartbeats int
	activity   *Activity
}

// SetLifecycleHookSecond sets how long one second of a hook's
// HeartbeatTimeout lasts (default a second), so tests can wait out a
// 30-second minimum quickly.
func (a *Account) SetLifecycleHookSecond(d time.Duration) {
	a.lock()
	defer a.unlock()
	a.lifecycle.second = d
}

func (a *Account) hookSecond() time.Duration {
	if a.lifecycle.second > 0 {
		return a.lifecycle.second
	}
	return time.Second
}

// PutLifecycleHook creates or updates a group's hook, as the API call does.
func (a *Account) PutLifecycleHook(h LifecycleHook) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.putHook(h))
}

func (a *Account) putHook(h LifecycleHook) *apiError {
	g := a.asgs[h.Group]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", h.Group)
	}
	if h.Name == "" {
		return errf(400, "ValidationError", "1 validation error detected: Value null at 'lifecycleHookName' failed to satisfy constraint: Member must not be null")
	}
	hooks := a.lifecycle.hooks[g]
	i := slices.IndexFunc(hooks, func(x *LifecycleHook) bool { return x.Name == h.Name })
	if i < 0 {
		// A new hook needs its transition; an update keeps what it omits.
		if h.Transition == "" {
			return errf(400, "ValidationError", "A lifecycle transition is required to create a lifecycle hook.")
		}
		if len(hooks) >= 50 {
			return errf(400, "LimitExceeded", "Cannot have more than 50 lifecycle hooks for Auto Scaling group %s.", h.Group)
		}
	} else {
		old := hooks[i]
		if h.Transition == "" {
			h.Transition = old.Transition
		}
		if h.HeartbeatTimeout == 0 {
			h.HeartbeatTimeout = old.HeartbeatTimeout
		}
		if h.DefaultResult == "" {
			h.DefaultResult = old.DefaultResult
		}
	}
	if h.Transition != TransitionTerminating && h.Transition != TransitionLaunching {
		return errf(400, "ValidationError", "Invalid Lifecycle Transition: %s", h.Transition)
	}
	if h.HeartbeatTimeout == 0 {
		h.HeartbeatTimeout = 3600
	}
	if h.HeartbeatTimeout < 30 || h.HeartbeatTimeout > 7200 {
		return errf(400, "ValidationError", "Heartbeat timeout %d is out of range: it must be between 30 and 7200 seconds.", h.HeartbeatTimeout)
	}
	if h.DefaultResult == "" {
		h.DefaultResult = ResultAbandon
	}
	if h.DefaultResult != ResultContinue && h.DefaultResult != ResultAbandon {
		return errf(400, "ValidationError", "Invalid default result: %s; valid values are CONTINUE and ABANDON.", h.DefaultResult)
	}
	if a.lifecycle.hooks == nil {
		a.lifecycle.hooks = map[*asg][]*LifecycleHook{}
	}
	if i < 0 {
		a.lifecycle.hooks[g] = append(hooks, &h)
	} else {
		hooks[i] = &h
	}
	return nil
}

// LifecycleHooks returns a group's hooks, sorted by name.
func (a *Account) LifecycleHooks(group string) []LifecycleHook {
	a.lock()
	defer a.unlock()
	var out []LifecycleHook
	for _, h := range a.hooksOf(group) {
		out = append(out, *h)
	}
	return out
}

func (a *Account) hooksOf(group string) []*LifecycleHook {
	g := a.asgs[group]
	if g == nil {
		return nil
	}
	hs := slices.Clone(a.lifecycle.hooks[g])
	slices.SortFunc(hs, func(x, y *LifecycleHook) int { return cmpString(x.Name, y.Name) })
	return hs
}

// DeleteLifecycleHook deletes a group's hook, as the API call does: an
// instance waiting for it gets the hook's default result.
func (a *Account) DeleteLifecycleHook(group, name string) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.deleteHook(group, name))
}

func (a *Account) deleteHook(group, name string) *apiError {
	g := a.asgs[group]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	hooks := a.lifecycle.hooks[g]
	i := slices.IndexFunc(hooks, func(x *LifecycleHook) bool { return x.Name == name })
	if i < 0 {
		return errf(400, "ValidationError", "No Lifecycle Hook found with name %s for group %s.", name, group)
	}
	a.lifecycle.hooks[g] = slices.Delete(hooks, i, i+1)
	// Outstanding actions are completed first: CONTINUE for terminating
	// instances, whatever the hook's default result (API reference,
	// DeleteLifecycleHook).
	for _, w := range a.waitsOf(g) {
		if slices.Contains(w.Hooks, name) {
			a.hookDone(w, name, ResultContinue, "completed")
		}
	}
	return nil
}

// LifecycleActions returns the instances of a group waiting at its hooks,
// sorted by instance id.
func (a *Account) LifecycleActions(group string) []LifecycleAction {
	a.lock()
	defer a.unlock()
	var out []LifecycleAction
	if g := a.asgs[group]; g != nil {
		for _, w := range a.waitsOf(g) {
			x := w.LifecycleAction
			x.Hooks = slices.Clone(w.Hooks)
			out = append(out, x)
		}
	}
	return out
}

// LifecycleEnds returns how each wait at the hooks ended, oldest first.
func (a *Account) LifecycleEnds() []LifecycleEnd {
	a.lock()
	defer a.unlock()
	return slices.Clone(a.lifecycle.history)
}

func (a *Account) waitsOf(g *asg) []*lifecycleWait {
	var out []*lifecycleWait
	for _, id := range slices.Sorted(maps.Keys(a.lifecycle.waits)) {
		if w := a.lifecycle.waits[id]; w.g == g {
			out = append(out, w)
		}
	}
	return out
}

// waiting says whether the instance is in Terminating:Wait.
func (a *Account) waiting(inst *Instance) bool {
	return a.lifecycle.waits[inst.ID] != nil
}

// anyWaiting says whether one of the instances is in Terminating:Wait.
func (a *Account) anyWaiting(ids []string) bool {
	for _, id := range ids {
		if a.lifecycle.waits[id] != nil {
			return true
		}
	}
	return false
}

// asLifecycleState is the instance's lifecycle state as Auto Scaling
// reports it.
func (a *Account) asLifecycleState(i *Instance) string {
	if a.waiting(i) {
		return StateTerminatingWait
	}
	return asLifecycle[i.State]
}

// hookTermination is called by terminate: a termination the instance's
// group decided (it recorded the termination's activity) of a group with
// termination hooks puts the instance in Terminating:Wait instead, and
// returns true. An instance already waiting stays as it is.
func (a *Account) hookTermination(inst *Instance) bool {
	if a.lifecycle.bypass || inst.ASG == "" || inst.WarmState != "" {
		return false
	}
	if a.lifecycle.waits[inst.ID] != nil {
		return true
	}
	g := a.asgs[inst.ASG]
	if g == nil || g.terminating[inst.ID] == nil || inst.State == "shutting-down" || inst.State == "terminated" {
		return false
	}
	var names []string
	minHB := 0
	for _, h := range a.lifecycle.hooks[g] {
		if h.Transition == TransitionTerminating {
			names = append(names, h.Name)
			if minHB == 0 || h.HeartbeatTimeout < minHB {
				minHB = h.HeartbeatTimeout
			}
		}
	}
	if len(names) == 0 {
		return false
	}
	slices.Sort(names)
	w := &lifecycleWait{
		LifecycleAction: LifecycleAction{Instance: inst.ID, Group: g.Name, Hooks: names, Token: uuidish(a.newID("lifecycle")), Since: a.now()},
		g:               g, inst: inst, activity: g.terminating[inst.ID],
	}
	if a.lifecycle.waits == nil {
		a.lifecycle.waits = map[string]*lifecycleWait{}
	}
	a.lifecycle.waits[inst.ID] = w
	w.activity.StatusCode = "MidLifecycleAction"
	// Each hook times out on its own; the global timeout is the smallest
	// hook's (the instance leaves at the first default result that ends it).
	w.deadline = w.Since.Add(time.Duration(LifecycleHook{HeartbeatTimeout: minHB}.GlobalTimeout()) * a.hookSecond())
	a.armHeartbeat(w, "")
	a.after(w.deadline.Sub(a.now()), func() {
		if a.lifecycle.waits[inst.ID] == w {
			a.endWait(w, a.timeoutResult(w), "global timeout")
		}
	})
	// The group no longer counts the instance: it may launch a replacement.
	a.reconcile(g)
	return true
}

// armHeartbeat starts the heartbeat timeout of hook (every hook the
// instance waits for when ""); a heartbeat calls it again for the hook it
// names and older timers do nothing. Each hook's action is its own: a
// heartbeat names one hook (RecordLifecycleActionHeartbeat's
// LifecycleHookName) and extends only that hook's timeout.
func (a *Account) armHeartbeat(w *lifecycleWait, hook string) {
	if w.gen == nil {
		w.gen = map[string]int{}
	}
	for _, h := range a.lifecycle.hooks[w.g] {
		if !slices.Contains(w.Hooks, h.Name) || hook != "" && h.Name != hook {
			continue
		}
		name, result := h.Name, h.DefaultResult
		w.gen[name]++
		gen := w.gen[name]
		a.after(time.Duration(h.HeartbeatTimeout)*a.hookSecond(), func() {
			if a.lifecycle.waits[w.Instance] == w && w.gen[name] == gen && slices.Contains(w.Hooks, name) {
				a.hookDone(w, name, result, "heartbeat timeout")
			}
		})
	}
}

// timeoutResult is the default result that ends a wait at the global
// timeout: ABANDON if any remaining hook says so.
func (a *Account) timeoutResult(w *lifecycleWait) string {
	for _, h := range a.lifecycle.hooks[w.g] {
		if slices.Contains(w.Hooks, h.Name) && h.DefaultResult == ResultAbandon {
			return ResultAbandon
		}
	}
	return ResultContinue
}

// hookDone ends one hook's action: ABANDON ends the wait (the remaining
// hooks are skipped), CONTINUE ends it when no hook remains. For a
// termination both terminate the instance.
func (a *Account) hookDone(w *lifecycleWait, hook, result, how string) {
	w.Hooks = slices.DeleteFunc(w.Hooks, func(n string) bool { return n == hook })
	if result == ResultAbandon || len(w.Hooks) == 0 {
		a.endWait(w, result, how)
	}
}

func (a *Account) endWait(w *lifecycleWait, result, how string) {
	delete(a.lifecycle.waits, w.Instance)
	a.lifecycle.history = append(a.lifecycle.history, LifecycleEnd{
		Instance: w.Instance, Group: w.Group, Result: result, How: how, Waited: a.now().Sub(w.Since), Heartbeats: w.heartbeats,
	})
	if w.activity.StatusCode == "MidLifecycleAction" {
		w.activity.StatusCode = "InProgress"
	}
	if a.instances[w.Instance] != w.inst {
		return
	}
	a.lifecycle.bypass = true
	a.terminate(w.inst)
	a.lifecycle.bypass = false
}

// findWait finds the action an API call names by instance id or token.
func (a *Account) findWait(group, hook, token, instance string) (*lifecycleWait, *apiError) {
	g := a.asgs[group]
	if g == nil {
		return nil, errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	if !slices.ContainsFunc(a.lifecycle.hooks[g], func(h *LifecycleHook) bool { return h.Name == hook }) {
		return nil, errf(400, "ValidationError", "No Lifecycle Hook found with name %s for group %s.", hook, group)
	}
	switch {
	case token == "" && instance == "":
		return nil, errf(400, "ValidationError", "Either LifecycleActionToken or InstanceId must be specified.")
	case token != "":
		for _, w := range a.waitsOf(g) {
			if w.Token == token && slices.Contains(w.Hooks, hook) {
				return w, nil
			}
		}
		return nil, errf(400, "ValidationError", "No active Lifecycle Action found with token %s", token)
	}
	if w := a.lifecycle.waits[instance]; w != nil && w.g == g && slices.Contains(w.Hooks, hook) {
		return w, nil
	}
	return nil, errf(400, "ValidationError", "No active Lifecycle Action found with instance ID %s", instance)
}

// CompleteLifecycleAction completes an instance's action at a hook, as the
// API call does (by instance id; token may be given instead).
func (a *Account) CompleteLifecycleAction(group, hook, instance, result string) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.complete(group, hook, "", instance, result))
}

func (a *Account) complete(group, hook, token, instance, result string) *apiError {
	if result != ResultContinue && result != ResultAbandon {
		return errf(400, "ValidationError", "Invalid lifecycle action result: %q; valid values are CONTINUE and ABANDON.", result)
	}
	w, aerr := a.findWait(group, hook, token, instance)
	if aerr != nil {
		return aerr
	}
	a.hookDone(w, hook, result, "completed")
	return nil
}

// RecordLifecycleActionHeartbeat restarts the heartbeat timeout of an
// instance's action, as the API call does; it cannot extend the wait past
// the global timeout.
func (a *Account) RecordLifecycleActionHeartbeat(group, hook, instance string) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.heartbeat(group, hook, "", instance))
}

func (a *Account) heartbeat(group, hook, token, instance string) *apiError {
	w, aerr := a.findWait(group, hook, token, instance)
	if aerr != nil {
		return aerr
	}
	w.heartbeats++
	a.armHeartbeat(w, hook)
	return nil
}

// ---- wire ----

func init() {
	ops := byVersion["2011-01-01"].ops
	ops["PutLifecycleHook"] = asPutLifecycleHook
	ops["DescribeLifecycleHooks"] = asDescribeLifecycleHooks
	ops["DeleteLifecycleHook"] = asDeleteLifecycleHook
	ops["CompleteLifecycleAction"] = asCompleteLifecycleAction
	ops["RecordLifecycleActionHeartbeat"] = asRecordLifecycleActionHeartbeat
}

func asPutLifecycleHook(c *call) (any, *apiError) {
	h := LifecycleHook{
		Name: c.form.str("LifecycleHookName"), Group: c.form.str("AutoScalingGroupName"),
		Transition: c.form.str("LifecycleTransition"), DefaultResult: c.form.str("DefaultResult"),
		NotificationMetadata: c.form.str("NotificationMetadata"),
	}
	n, has, aerr := c.form.int("HeartbeatTimeout")
	if aerr != nil {
		return nil, aerr
	}
	if has {
		if n == 0 {
			return nil, errf(400, "ValidationError", "Heartbeat timeout 0 is out of range: it must be between 30 and 7200 seconds.")
		}
		h.HeartbeatTimeout = n
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.putHook(h); aerr != nil {
		return nil, aerr
	}
	return &xmlWriter{}, nil
}

func asDescribeLifecycleHooks(c *call) (any, *apiError) {
	group := c.form.str("AutoScalingGroupName")
	names := c.form.list("LifecycleHookNames.member")
	a := c.acct
	a.lock()
	defer a.unlock()
	if a.asgs[group] == nil {
		return nil, errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	var hs []*LifecycleHook
	for _, h := range a.hooksOf(group) {
		if len(names) == 0 || slices.Contains(names, h.Name) {
			hs = append(hs, h)
		}
	}
	w := &xmlWriter{}
	w.list("LifecycleHooks", "member", len(hs), func(k int) {
		h := hs[k]
		w.leaf("LifecycleHookName", h.Name)
		w.leaf("AutoScalingGroupName", h.Group)
		w.leaf("LifecycleTransition", h.Transition)
		w.opt("NotificationMetadata", h.NotificationMetadata)
		w.int("HeartbeatTimeout", int64(h.HeartbeatTimeout))
		w.int("GlobalTimeout", int64(h.GlobalTimeout()))
		w.leaf("DefaultResult", h.DefaultResult)
	})
	return w, nil
}

func asDeleteLifecycleHook(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.deleteHook(c.form.str("AutoScalingGroupName"), c.form.str("LifecycleHookName")); aerr != nil {
		return nil, aerr
	}
	return &xmlWriter{}, nil
}

func asCompleteLifecycleAction(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.complete(c.form.str("AutoScalingGroupName"), c.form.str("LifecycleHookName"),
		c.form.str("LifecycleActionToken"), c.form.str("InstanceId"), c.form.str("LifecycleActionResult")); aerr != nil {
		return nil, aerr
	}
	return &xmlWriter{}, nil
}

func asRecordLifecycleActionHeartbeat(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.heartbeat(c.form.str("AutoScalingGroupName"), c.form.str("LifecycleHookName"),
		c.form.str("LifecycleActionToken"), c.form.str("InstanceId")); aerr != nil {
		return nil, aerr
	}
	return &xmlWriter{}, nil
}
