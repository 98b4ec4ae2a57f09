package awsfake

import (
	"slices"
	"strconv"
	"time"
)

// ---- load balancer targets and their health ----
//
// What a node's instance goes through in a load balancer when Kubernetes
// takes the node out of it, as AWS documents it:
//
//   - ELBv2 (NLB, ALB) instance targets: a registered target is healthy
//     (health checks are not simulated: it passes them while its instance
//     runs). DeregisterTargets makes it draining (reason
//     Target.DeregistrationInProgress) for the target group's deregistration
//     delay (deregistration_delay.timeout_seconds, 300 s by default), which
//     lets in-flight connections finish and sends no new ones; then it is
//     gone, and DescribeTargetHealth naming it answers unused,
//     Target.NotRegistered ("Target health" in the ELB user guide).
//   - Classic load balancers: DeregisterInstancesFromLoadBalancer takes the
//     instance out of the load balancer's instance list; with connection
//     draining enabled, DescribeInstanceHealth reports it InService,
//     "Instance deregistration currently in progress." until the draining
//     timeout ends, then InvalidInstance, as for any unregistered instance
//     ("Configure connection draining for your Classic Load Balancer").
//   - An instance terminated while registered keeps receiving new
//     connections until its health checks fail (UnhealthyThreshold x
//     interval: HealthCheckGrace here), and its in-flight connections are
//     cut at once. The account records each such termination (TrafficCuts):
//     the fault a roll must not cause.
//
// Nothing here watches Kubernetes: deregistering the instances of nodes
// labelled node.kubernetes.io/exclude-from-external-load-balancers is the
// cloud provider's service controller's job, which a test models by calling
// DeregisterTargets / DeregisterFromClassic.

// DefaultDeregistrationDelay is ELBv2's default deregistration delay.
const DefaultDeregistrationDelay = 300 * time.Second

// HealthCheckGrace is how long a load balancer still sends new connections
// to an instance that was terminated while registered: two failed health
// checks 30 s apart, ELBv2's and the in-tree cloud provider's defaults.
var HealthCheckGrace = 60 * time.Second

type target struct {
	registered   time.Time
	drainingTill time.Time // zero: not deregistered
	terminated   time.Time // zero: its instance runs
}

// TargetHealth is a target's state in a target group, as DescribeTargetHealth
// reports it.
type TargetHealth struct {
	ID     string
	State  string // healthy, draining, unused (initial and unhealthy are not simulated)
	Reason string
}

// TrafficCut is an instance terminated while a load balancer still sent it
// connections: registered and healthy (new connections keep coming until the
// health checks fail) or draining (in-flight connections cut).
type TrafficCut struct {
	Instance     string
	LoadBalancer string // target group ARN or classic load balancer name
	State        string // healthy, draining; InService for a classic one
	Time         time.Time
}

func (a *Account) targetGroup(arnOrName string) *TargetGroup {
	for arn, tg := range a.tgs {
		if arn == arnOrName || tg.Name == arnOrName {
			if tg.targets == nil {
				tg.targets = map[string]*target{}
			}
			return tg
		}
	}
	return nil
}

func (tg *TargetGroup) delay() time.Duration {
	switch {
	case tg.DeregistrationDelay < 0:
		return 0
	case tg.DeregistrationDelay == 0:
		return DefaultDeregistrationDelay
	}
	return tg.DeregistrationDelay
}

// health reports one target's state at now, dropping a target whose
// draining ended.
func (tg *TargetGroup) health(id string, now time.Time) TargetHealth {
	t := tg.targets[id]
	switch {
	case t == nil:
		return TargetHealth{ID: id, State: "unused", Reason: "Target.NotRegistered"}
	case !t.drainingTill.IsZero() && !now.Before(t.drainingTill):
		delete(tg.targets, id)
		return TargetHealth{ID: id, State: "unused", Reason: "Target.NotRegistered"}
	case !t.drainingTill.IsZero():
		return TargetHealth{ID: id, State: "draining", Reason: "Target.DeregistrationInProgress"}
	case !t.terminated.IsZero() && now.Sub(t.terminated) >= HealthCheckGrace:
		return TargetHealth{ID: id, State: "unused", Reason: "Target.InvalidState"}
	}
	return TargetHealth{ID: id, State: "healthy"}
}

// RegisterTargets registers instances in a target group (by ARN or name),
// healthy at once.
func (a *Account) RegisterTargets(tg string, ids ...string) error {
	a.lock()
	defer a.unlock()
	g := a.targetGroup(tg)
	if g == nil {
		return errf(400, "TargetGroupNotFound", "Target group '%s' not found", tg)
	}
	for _, id := range ids {
		if a.instances[id] == nil {
			return errf(400, "InvalidTarget", "The following targets are not in a running state and cannot be registered: '%s'", id)
		}
		if t := g.targets[id]; t == nil || !t.drainingTill.IsZero() {
			g.targets[id] = &target{registered: a.now()}
		}
	}
	return nil
}

// DeregisterTargets deregisters instances from a target group: draining for
// its deregistration delay, then gone.
func (a *Account) DeregisterTargets(tg string, ids ...string) error {
	a.lock()
	defer a.unlock()
	g := a.targetGroup(tg)
	if g == nil {
		return errf(400, "TargetGroupNotFound", "Target group '%s' not found", tg)
	}
	now := a.now()
	for _, id := range ids {
		if t := g.targets[id]; t != nil && t.drainingTill.IsZero() {
			t.drainingTill = now.Add(g.delay())
			if g.delay() == 0 {
				delete(g.targets, id)
			}
		}
	}
	return nil
}

// Targets reports the health of every target of a target group (by ARN or
// name), sorted by instance id.
func (a *Account) Targets(tg string) []TargetHealth {
	a.lock()
	defer a.unlock()
	g := a.targetGroup(tg)
	if g == nil {
		return nil
	}
	return g.describe(nil, a.now())
}

func (tg *TargetGroup) describe(ids []string, now time.Time) []TargetHealth {
	listed := ids == nil
	if listed {
		for id := range tg.targets {
			ids = append(ids, id)
		}
		slices.Sort(ids)
	}
	var out []TargetHealth
	for _, id := range ids {
		h := tg.health(id, now)
		if listed && h.State == "unused" && h.Reason == "Target.NotRegistered" {
			continue
		}
		out = append(out, h)
	}
	return out
}

// RegisterWithClassic registers instances with a classic load balancer.
func (a *Account) RegisterWithClassic(name string, ids ...string) error {
	a.lock()
	defer a.unlock()
	c := a.clbs[name]
	if c == nil {
		return errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	for _, id := range ids {
		if a.instances[id] == nil {
			return errf(400, "InvalidInstance", "The instance ID '%s' is not valid", id)
		}
		delete(c.draining, id)
		if !slices.Contains(c.Instances, id) {
			c.Instances = append(c.Instances, id)
		}
	}
	return nil
}

// DeregisterFromClassic deregisters instances from a classic load
// balancer; with ConnectionDraining they drain for that long.
func (a *Account) DeregisterFromClassic(name string, ids ...string) error {
	a.lock()
	defer a.unlock()
	c := a.clbs[name]
	if c == nil {
		return errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	for _, id := range ids {
		if !slices.Contains(c.Instances, id) {
			continue
		}
		c.Instances = slices.DeleteFunc(c.Instances, func(x string) bool { return x == id })
		if c.ConnectionDraining > 0 {
			if c.draining == nil {
				c.draining = map[string]time.Time{}
			}
			c.draining[id] = a.now().Add(c.ConnectionDraining)
		}
	}
	return nil
}

// SetConnectionDraining sets a classic load balancer's connection draining
// timeout (0 disables it).
func (a *Account) SetConnectionDraining(name string, d time.Duration) error {
	a.lock()
	defer a.unlock()
	c := a.clbs[name]
	if c == nil {
		return errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	c.ConnectionDraining = d
	return nil
}

// classicState is DescribeInstanceHealth's answer for one instance: ok false
// for an instance neither registered nor draining (InvalidInstance).
func (c *ClassicLoadBalancer) classicState(id string, now time.Time) (state, reason, desc string, ok bool) {
	if slices.Contains(c.Instances, id) {
		return "InService", "N/A", "N/A", true
	}
	if till, draining := c.draining[id]; draining {
		if now.Before(till) {
			return "InService", "N/A", "Instance deregistration currently in progress.", true
		}
		delete(c.draining, id)
	}
	return "", "", "", false
}

// TrafficCuts returns the instances terminated while a load balancer still
// sent them connections, in the order they were terminated.
func (a *Account) TrafficCuts() []TrafficCut {
	a.lock()
	defer a.unlock()
	return slices.Clone(a.cuts)
}

// Route is where a load balancer (target group ARN or name, or a classic
// load balancer's name) sends its next new connection, round robin over the
// targets that receive new ones: an instance terminated less than
// HealthCheckGrace ago among them. alive says whether that instance still
// runs (a connection to one shutting down or terminated fails). ok is false
// when no target receives new connections.
func (a *Account) Route(lb string) (instance string, alive, ok bool) {
	a.lock()
	defer a.unlock()
	now := a.now()
	var ids []string
	if g := a.targetGroup(lb); g != nil {
		for _, h := range g.describe(nil, now) {
			if h.State == "healthy" {
				ids = append(ids, h.ID)
			}
		}
	} else if c := a.clbs[lb]; c != nil {
		ids = append(ids, c.Instances...)
		for id, t := range c.terminatedAt {
			if now.Sub(t) < HealthCheckGrace {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	if len(ids) == 0 {
		return "", false, false
	}
	if a.routed == nil {
		a.routed = map[string]int{}
	}
	id := ids[a.routed[lb]%len(ids)]
	a.routed[lb]++
	inst := a.instances[id]
	return id, inst != nil && (inst.State == "running" || inst.State == "pending"), true
}

// cutTraffic records the load balancers an instance is still in as it
// starts terminating (called with the lock held).
func (a *Account) cutTraffic(inst *Instance) {
	now := a.now()
	for _, tg := range a.tgs {
		t := tg.targets[inst.ID]
		if t == nil {
			continue
		}
		h := tg.health(inst.ID, now)
		if h.State == "healthy" || h.State == "draining" {
			a.cuts = append(a.cuts, TrafficCut{Instance: inst.ID, LoadBalancer: tg.ARN, State: h.State, Time: now})
		}
		if t = tg.targets[inst.ID]; t != nil {
			t.terminated = now
		}
	}
	for _, c := range a.clbs {
		if state, _, desc, ok := c.classicState(inst.ID, now); ok {
			if desc != "N/A" {
				state = "draining"
			}
			a.cuts = append(a.cuts, TrafficCut{Instance: inst.ID, LoadBalancer: c.Name, State: state, Time: now})
			if slices.Contains(c.Instances, inst.ID) {
				if c.terminatedAt == nil {
					c.terminatedAt = map[string]time.Time{}
				}
				c.terminatedAt[inst.ID] = now
			}
		}
	}
}

// elbv2DescribeTargetHealth answers DescribeTargetHealth: every registered
// or draining target, or the named ones (unused, Target.NotRegistered, when
// not registered).
func elbv2DescribeTargetHealth(c *call) (any, *apiError) {
	arn := c.form.str("TargetGroupArn")
	var ids []string
	for _, i := range c.form.indices("Targets.member") {
		if id := c.form.str("Targets.member." + strconv.Itoa(i) + ".Id"); id != "" {
			ids = append(ids, id)
		}
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	g := a.tgs[arn]
	if g == nil {
		return nil, errf(400, "TargetGroupNotFound", "Target group '%s' not found", arn)
	}
	if g.targets == nil {
		g.targets = map[string]*target{}
	}
	hs := g.describe(ids, a.now())
	w := &xmlWriter{}
	w.list("TargetHealthDescriptions", "member", len(hs), func(k int) {
		h := hs[k]
		w.elem("Target", func() {
			w.leaf("Id", h.ID)
			w.int("Port", int64(g.Port))
		})
		w.leaf("HealthCheckPort", strconv.Itoa(int(g.Port)))
		w.elem("TargetHealth", func() {
			w.leaf("State", h.State)
			if h.Reason != "" {
				w.leaf("Reason", h.Reason)
			}
		})
	})
	return w, nil
}

// elbDescribeInstanceHealth answers DescribeInstanceHealth: the named
// instances (InvalidInstance for one neither registered nor draining), or
// every registered one.
func elbDescribeInstanceHealth(c *call) (any, *apiError) {
	name := c.form.str("LoadBalancerName")
	var ids []string
	for _, i := range c.form.indices("Instances.member") {
		if id := c.form.str("Instances.member." + strconv.Itoa(i) + ".InstanceId"); id != "" {
			ids = append(ids, id)
		}
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	lb := a.clbs[name]
	if lb == nil {
		return nil, errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	if len(ids) == 0 {
		ids = slices.Clone(lb.Instances)
	}
	type row struct{ id, state, reason, desc string }
	var rows []row
	now := a.now()
	for _, id := range ids {
		st, reason, desc, ok := lb.classicState(id, now)
		if !ok {
			return nil, errf(400, "InvalidInstance", "Could not find EC2 instance %s.", id)
		}
		rows = append(rows, row{id, st, reason, desc})
	}
	w := &xmlWriter{}
	w.list("InstanceStates", "member", len(rows), func(k int) {
		w.leaf("InstanceId", rows[k].id)
		w.leaf("State", rows[k].state)
		w.leaf("ReasonCode", rows[k].reason)
		w.leaf("Description", rows[k].desc)
	})
	return w, nil
}
