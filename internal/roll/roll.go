// Package roll replaces the nodes of a node group one after another (or a
// few at a time) behind the gate: for each node it waits for the gate's GO,
// cordons the node, drains it through the Eviction API, has the provider
// replace its instance, and waits until the replacement is Ready and the
// evicted workloads run again. A WAIT pauses the roll before the next node;
// a STOP, a drain that does not finish or a replacement that does not come
// ends it, never with a node terminated before its drain finished. The
// progress lives in annotations on the nodes, so an interrupted roll
// resumes where it was when it is run again.
package roll

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

const fieldManager = "upgradeguard-roll"

type roller struct {
	cfg   Config
	plan  *Plan
	state stateStore
	rep   *reporter
	m     *metrics
	down  *sampler // nil without Config.Downtime

	// groups are the Auto Scaling groups of the plan's nodes, sorted;
	// planned their instances (never a replacement).
	groups  []string
	planned map[string]bool

	mu      sync.Mutex
	claimed map[string]bool // instances launched for a node of this run
	// leftGroup are, per node, the instances claimed for it that left the
	// group before their node was Ready (launch.go).
	leftGroup map[string][]string
	// canaryNew are the canary's new nodes (new -> old node), recorded on
	// the main nodes too; canaryLoads the workloads the canary's drains
	// evicted in this run.
	canaryNew   map[string]string
	canaryLoads []Workload
}

// Run plans the roll and, unless DryRun, carries it out. The Result is
// filled as far as the roll got, also when it returns an error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("roll metrics: %w", err)
	}
	r := &roller{
		cfg: cfg, m: m, claimed: map[string]bool{}, canaryNew: map[string]string{},
		state: stateStore{client: cfg.Client, now: cfg.Now},
		rep:   &reporter{out: cfg.Out, tty: cfg.TTY, client: cfg.Client, logger: cfg.Logger, now: cfg.Now, start: cfg.Now()},
	}
	if cfg.DryRun {
		r.rep.client = nil
	}
	defer r.rep.finish()
	if cfg.Reset {
		return nil, r.reset(ctx)
	}
	plan, err := makePlan(ctx, cfg.Client, cfg.Provider, cfg.Selection, cfg.Now())
	if err != nil {
		return nil, err
	}
	r.plan = plan
	if !plan.Resumed && cfg.Canary > 0 {
		plan.Canary, plan.Soak = min(cfg.Canary, len(plan.Nodes)), cfg.CanarySoak
	}
	res := &Result{Plan: plan}
	if err := plan.Write(cfg.Out, cfg.Now()); err != nil {
		return res, err
	}
	if err := r.checkPlan(); err != nil {
		return res, err
	}
	r.groups = plan.groups()
	r.planned = map[string]bool{}
	for _, p := range plan.Nodes {
		if id := kube.InstanceID(p.Node.Spec.ProviderID); id != "" {
			r.planned[id] = true
		}
	}
	if cfg.DryRun {
		return res, r.dryRun(ctx)
	}
	if len(plan.Nodes) == 0 {
		r.rep.linef("", "nothing to replace")
		return res, nil
	}
	if !plan.Resumed {
		for i, p := range plan.Nodes {
			extra := map[string]*string{}
			if p.HasInstance {
				extra[AnnotationGroup] = strp(p.Instance.Group)
			}
			if plan.Canary > 0 {
				plan.Nodes[i].State.Phase = PhaseMain
				if i < plan.Canary {
					plan.Nodes[i].State.Phase = PhaseCanary
				} else {
					plan.Nodes[i].State.Soak = plan.Soak
					extra[AnnotationSoak] = strp(plan.Soak.String())
				}
				extra[AnnotationPhase] = strp(plan.Nodes[i].State.Phase)
			}
			if err := r.state.join(ctx, p.Name(), plan.Roll, i, extra); err != nil {
				return res, fmt.Errorf("recording the plan on the nodes: %w", err)
			}
			r.rep.event(ctx, p.Node, false, ReasonPlanned, "node %d of %d to replace in roll %s", i+1, len(plan.Nodes), plan.Roll)
		}
	}
	if err := r.holdProcesses(ctx); err != nil {
		return res, err
	}
	m.planned.Set(float64(len(plan.Nodes)))
	r.rep.setTotal(len(plan.Nodes))
	r.down = r.startDowntime(ctx)
	err = r.run(ctx, res)
	var ie *InterruptedError
	if errors.As(err, &ie) {
		r.rep.linef("", "the processes suspended for the roll stay suspended until it is run again (or --reset)")
	} else {
		if err == nil {
			err = r.checkGroups(ctx)
		}
		if rerr := r.releaseProcesses(ctx); rerr != nil {
			err = errors.Join(err, fmt.Errorf("resuming the processes suspended for the roll (resume them by hand, or run the roll with --reset): %w", rerr))
		}
	}
	r.summary(res, err)
	r.endDowntime(r.down, res)
	return res, err
}

// reset removes the roll state from the selected nodes and resumes the
// processes a roll suspended on their groups.
func (r *roller) reset(ctx context.Context) error {
	nodes, err := listNodes(ctx, r.cfg.Client, r.cfg.Selection)
	if err != nil {
		return err
	}
	groups := map[string]bool{}
	var ids []string
	for i := range nodes {
		if g := nodes[i].Annotations[AnnotationGroup]; g != "" {
			groups[g] = true
		}
		if id := kube.InstanceID(nodes[i].Spec.ProviderID); id != "" {
			ids = append(ids, id)
		}
	}
	if insts, err := r.cfg.Provider.Describe(ctx, ids); err == nil {
		for _, inst := range insts {
			groups[inst.Group] = true
		}
	} else {
		return err
	}
	for g := range groups {
		resumed, err := r.cfg.Provider.ReleaseProcesses(ctx, g, nil)
		if err != nil {
			return err
		}
		if len(resumed) > 0 {
			r.rep.linef("", "group %s: %s resumed (suspended by a roll)", g, strings.Join(resumed, ", "))
		}
	}
	for i := range nodes {
		n := &nodes[i]
		st, err := readState(n)
		if st.Roll == "" && err == nil {
			continue
		}
		if (st.Cordoned || n.Annotations[AnnotationExcluded] == "true") && st.Step.rank() < StepTerminating.rank() {
			if err := r.state.release(ctx, n); err != nil {
				return err
			}
			r.rep.linef("", "%s: uncordoned (if the roll cordoned it), back in the load balancers (if the roll excluded it)", n.Name)
		}
		if err := r.state.leave(ctx, n); err != nil {
			return err
		}
		r.rep.linef("", "%s: roll %s forgotten (was at step %s)", n.Name, st.Roll, st.Step)
		r.rep.event(ctx, n, false, ReasonStopped, "roll %s reset at step %s", st.Roll, st.Step)
	}
	return nil
}

// checkPlan refuses a plan with a node the provider cannot replace.
func (r *roller) checkPlan() error {
	var bad []string
	for _, p := range r.plan.Nodes {
		if p.HasInstance && p.Instance.InService || p.State.Step.rank() >= StepTerminating.rank() {
			continue
		}
		id := kube.InstanceID(p.Node.Spec.ProviderID)
		switch {
		case id == "":
			bad = append(bad, fmt.Sprintf("%s: %v (%q)", p.Name(), errNoInstance, p.Node.Spec.ProviderID))
		case !p.HasInstance:
			bad = append(bad, fmt.Sprintf("%s: instance %s is in no Auto Scaling group the provider may change", p.Name(), id))
		default:
			bad = append(bad, fmt.Sprintf("%s: instance %s is not in service", p.Name(), id))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("cannot replace %d node(s): %s", len(bad), strings.Join(bad, "; "))
	}
	return nil
}

// dryRun prints what the roll would do: the processes it suspends, the
// canary phase, and for each node what its drain would do, the Eviction
// API asked with dryRun included.
func (r *roller) dryRun(ctx context.Context) error {
	mode := "terminate its instance without decrementing the group's capacity, wait for the instance the group launches to be a Ready node"
	if r.cfg.Surge {
		mode = "raise the group's desired capacity by one and wait for the instance it launches to be a Ready node, then terminate the instance decrementing the capacity"
	}
	fmt.Fprintf(r.cfg.Out, "dry run: for each node, %d at a time: wait for the gate's GO, ask the Eviction API (dry run) about its pods, cordon and label it %s, drain, wait until no load balancer routes to its instance (at most %s), %s, wait until the evicted workloads are Running again; a failed launch stops the roll\n",
		r.cfg.MaxUnavailable, LabelExcludeFromLoadBalancers, r.cfg.Deregistration.Timeout, mode)
	for _, g := range r.groups {
		fmt.Fprintf(r.cfg.Out, "dry run: group %s: %s suspended while the roll runs (those not suspended already), resumed at its end\n", g, strings.Join(RollProcesses, ", "))
	}
	if r.plan.Canary > 0 && r.plan.Canary < len(r.plan.Nodes) {
		fmt.Fprintf(r.cfg.Out, "dry run: canary phase: nodes 1-%d, then a soak of %s (the gate evaluating every %s, the new nodes judged), then nodes %d-%d\n",
			r.plan.Canary, r.plan.Soak, r.cfg.GateWait.Interval, r.plan.Canary+1, len(r.plan.Nodes))
	}
	var refusals []string
	for i, p := range r.plan.Nodes {
		pods, err := podsOn(ctx, r.cfg.Client, p.Name())
		if err != nil {
			return err
		}
		dp := planDrain(pods, r.cfg.Drain)
		fmt.Fprintf(r.cfg.Out, "  %d. %s: evict %d pod(s), skip %d", i+1, p.Name(), len(dp.Evict), len(dp.Skipped))
		stops := len(dp.Refused) > 0
		if stops {
			fmt.Fprintf(r.cfg.Out, ", REFUSE %d: %s", len(dp.Refused), strings.Join(dp.Refused, "; "))
		}
		d := &drainer{client: r.cfg.Client, o: r.cfg.Drain}
		if refused, err := d.preflight(ctx, dp.Evict); err != nil {
			fmt.Fprintf(r.cfg.Out, ", Eviction API not asked: %v", err)
		} else if len(refused) > 0 {
			fmt.Fprintf(r.cfg.Out, ", EVICTION API REFUSES %d for good: %s", len(refused), (&PreflightError{Pods: refused}).list())
			stops = true
		}
		if stops {
			refusals = append(refusals, p.Name())
		}
		fmt.Fprintln(r.cfg.Out)
	}
	if len(refusals) > 0 {
		fmt.Fprintf(r.cfg.Out, "dry run: the roll would stop at %s unless the --force options or budgets named above change\n", strings.Join(refusals, ", "))
	}
	return nil
}

// run replaces the plan's nodes, the canary phase first (then its soak),
// then asks the gate once more.
func (r *roller) run(ctx context.Context, res *Result) error {
	canary, rest, soak := r.phases()
	for _, p := range rest {
		maps.Copy(r.canaryNew, canaryNodesOf(p.Node)) // an earlier run's canary
	}
	if len(canary) > 0 {
		r.rep.linef("", "canary phase: %d node(s), then a soak of %s before the other %d", len(canary), soak, len(rest))
		if err := r.dispatch(ctx, canary, res); err != nil {
			return err
		}
	}
	if soak > 0 && len(rest) > 0 {
		if err := r.soak(ctx, soak, rest); err != nil {
			return err
		}
	}
	if err := r.dispatch(ctx, rest, res); err != nil {
		return err
	}
	// The gate once more: is the cluster healthy with the last replacement?
	ev, _, err := r.gateWait(ctx, nil)
	res.FinalGate = ev
	if err != nil {
		if ctx.Err() != nil {
			return &InterruptedError{Detail: "after the last node, while waiting for the gate (every node was replaced)"}
		}
		return &StoppedError{Last: ev, Err: err}
	}
	return nil
}

// dispatch replaces nodes, at most MaxUnavailable at once, each after the
// gate's GO.
func (r *roller) dispatch(ctx context.Context, nodes []PlannedNode, res *Result) error {
	slots := make(chan struct{}, r.cfg.MaxUnavailable)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		stopped bool
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
		stopped = true
	}
	isStopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stopped
	}
	var interrupted error
dispatch:
	for _, p := range nodes {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		if isStopped() {
			break
		}
		nr := NodeResult{Node: p.Name()}
		if p.State.Step.rank() < StepTerminating.rank() {
			began := r.cfg.Now()
			ev, n, err := r.gateWait(ctx, p.Node)
			nr.Gate, nr.GateEvaluations = r.cfg.Now().Sub(began), n
			r.m.steps.WithLabelValues("gate").Observe(nr.Gate.Seconds())
			if err != nil {
				<-slots
				if ctx.Err() != nil {
					interrupted = &InterruptedError{Node: p.Name(), Step: "gate", Detail: "while waiting for the gate's GO; the node was not touched"}
				} else {
					r.rep.event(ctx, p.Node, true, ReasonStopped, "roll stopped: %v", err)
					fail(&StoppedError{Node: p.Name(), Last: ev, Err: err})
				}
				break
			}
		}
		r.m.inFlight.Inc()
		wg.Go(func() {
			defer func() { <-slots; r.m.inFlight.Dec() }()
			nr, err := r.replace(ctx, p, nr)
			mu.Lock()
			res.Nodes = append(res.Nodes, nr)
			mu.Unlock()
			r.down.nodeDone(nr)
			if err != nil {
				fail(err)
				return
			}
			r.m.replaced.Inc()
			r.rep.nodeDone()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if interrupted != nil {
		return interrupted
	}
	if ctx.Err() != nil {
		return &InterruptedError{Detail: "between nodes"}
	}
	return nil
}

// gateWait waits for the gate's GO for the node (nil: the cluster as a
// whole), reporting WAIT reasons as they change. It returns the last
// evaluation and how many evaluations it took.
func (r *roller) gateWait(ctx context.Context, n *corev1.Node) (gate.Evaluation, int, error) {
	name, label := "", ""
	if n != nil {
		name, label = n.Name, n.Name
	}
	o := r.cfg.GateWait
	evals := 0
	lastWhy := ""
	began := r.cfg.Now()
	o.OnEvaluation = func(e gate.Evaluation) {
		evals++
		r.m.evaluations.WithLabelValues(string(e.Verdict)).Inc()
		switch {
		case e.Verdict == gate.GO:
			r.m.paused.Set(0)
			if lastWhy != "" {
				r.rep.linef(label, "gate GO again, resuming")
			}
		case e.Verdict == gate.WAIT && !e.Passed():
			r.m.paused.Set(1)
			why := strings.Join(e.Reasons(), "; ")
			if why != lastWhy {
				r.rep.linef(label, "gate WAIT, roll paused: %s", why)
				if n != nil {
					r.rep.event(ctx, n, true, ReasonGate, "gate WAIT, roll paused: %s", why)
				}
				lastWhy = why
			}
		case e.Verdict == gate.WAIT && lastWhy != "":
			r.rep.linef(label, "gate passing again (%s)", e.Note)
			lastWhy = ""
		case e.Verdict == gate.STOP:
			r.m.paused.Set(1)
		}
	}
	ev, err := gate.Wait(ctx, r.cfg.Gate, name, o)
	if err != nil {
		return ev, evals, err
	}
	took := r.cfg.Now().Sub(began)
	if n != nil {
		r.rep.linef(label, "gate GO after %s (%d evaluations)", seconds(took), evals)
		r.rep.event(ctx, n, false, ReasonGate, "gate GO after %s (%d evaluations)", seconds(took), evals)
	} else {
		r.rep.linef("", "gate GO after the last node (%s, %d evaluations)", seconds(took), evals)
	}
	return ev, evals, nil
}

// background is for the steps that must finish once begun, whatever
// happens to the roll's context: recording state, asking AWS.
func background(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
}

// summary prints the totals and the gate's overhead per node.
func (r *roller) summary(res *Result, err error) {
	var gateTotal, total time.Duration
	evals, done := 0, 0
	for _, n := range res.Nodes {
		if n.Total == 0 {
			continue // not replaced
		}
		done++
		gateTotal += n.Gate
		total += n.Total + n.Gate
		evals += n.GateEvaluations
	}
	status := "done"
	if err != nil {
		status = "ended early"
	}
	line := fmt.Sprintf("roll %s %s: %d of %d node(s) replaced in %s", r.plan.Roll, status, done, len(r.plan.Nodes), seconds(r.cfg.Now().Sub(r.rep.start)))
	if done > 0 {
		line += fmt.Sprintf("; gate %s per node on average (%d evaluations in all), %.0f%% of the time per node",
			seconds(gateTotal/time.Duration(done)), evals, 100*gateTotal.Seconds()/max(total.Seconds(), 1e-9))
	}
	r.rep.linef("", "%s", line)
}
