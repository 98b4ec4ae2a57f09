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
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	nodescollector "github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/internal/gate"
)

const fieldManager = "upgradeguard-roll"

// Config configures a roll.
type Config struct {
	Client   kubernetes.Interface
	Provider Provider
	// Gate is asked before each node (with the node, so its drain check
	// applies) and once more after the last one (without a node).
	Gate gate.Evaluator
	// GateWait are the options of each gate wait: consecutive passing
	// evaluations, their interval, and the timeout after which the roll
	// stops (0: wait as long as it takes). OnEvaluation is the roll's.
	GateWait  gate.WaitOptions
	Selection Selection
	Drain     DrainOptions
	// MaxUnavailable is how many nodes may be cordoned, drained or
	// replaced at once (default 1).
	MaxUnavailable int
	// Surge raises the group's desired capacity by one and waits for the
	// new node before draining each node, then terminates the old instance
	// decrementing the capacity; without it the instance is terminated
	// after the drain and the group launches its replacement.
	Surge bool
	// NodeTimeout bounds the wait for a replacement (or surge) node to be
	// Ready and for the evicted workloads to be Running again (default 20m).
	// A launch that fails ends it at once (*LaunchError).
	NodeTimeout time.Duration
	// Canary replaces this many nodes first, then holds for CanarySoak while
	// the gate keeps evaluating the cluster; an evaluation that does not
	// pass during the soak stops the roll (*CanaryError). 0: no canary.
	Canary     int
	CanarySoak time.Duration
	// Poll is how often nodes and pods are listed while waiting (default 2s).
	Poll time.Duration
	// DryRun prints the plan and what the drain would do, and changes
	// nothing.
	DryRun bool
	// Reset forgets a roll in progress on the selected nodes: it removes the
	// roll's annotations and uncordons the nodes the roll cordoned and did
	// not terminate, then returns.
	Reset bool
	// Out receives the progress lines; TTY adds a progress bar.
	Out io.Writer
	TTY bool
	// Downtime, when set, samples the Services' ready endpoints and the
	// probes while the roll runs (downtime.go): Result.Downtime.
	Downtime *DowntimeOptions
	// Registerer, when set, gets the roll's progress metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

func (c *Config) defaults() error {
	if c.Client == nil {
		return errors.New("roll: no Kubernetes client")
	}
	if c.Provider == nil {
		return errors.New("roll: no provider")
	}
	if c.Gate == nil && !c.DryRun {
		return errors.New("roll: no gate")
	}
	if err := c.Selection.validate(); err != nil {
		return err
	}
	if c.MaxUnavailable <= 0 {
		c.MaxUnavailable = 1
	}
	if c.Canary < 0 || c.CanarySoak < 0 || c.CanarySoak > 0 && c.Canary == 0 {
		return fmt.Errorf("roll: canary %d with soak %s: want a soak only with canary nodes, neither negative", c.Canary, c.CanarySoak)
	}
	if c.NodeTimeout <= 0 {
		c.NodeTimeout = 20 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = 2 * time.Second
	}
	c.Drain.defaults()
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// NodeResult is how the replacement of one node went.
type NodeResult struct {
	Node, Replacement string
	Evicted           int
	// GateEvaluations made before the node, and the time they took
	// (waiting included): the gate's overhead for this node.
	GateEvaluations int
	Gate            time.Duration
	// The other steps' durations; Total is from the gate's GO to the
	// workloads being back.
	Cordon, Surge, Drain, Terminate, Replace, Total time.Duration
}

// Result is what a roll did.
type Result struct {
	Plan  *Plan
	Nodes []NodeResult
	// FinalGate is the gate's last evaluation, after the last node.
	FinalGate gate.Evaluation
	// Downtime is the downtime report (with Config.Downtime).
	Downtime *DowntimeReport
}

// StoppedError ends a roll whose gate did not say GO within the timeout.
type StoppedError struct {
	Node string // "" for the check after the last node
	Last gate.Evaluation
	Err  error
}

func (e *StoppedError) Error() string {
	where := "before node " + e.Node
	if e.Node == "" {
		where = "after the last node"
	}
	return fmt.Sprintf("roll stopped %s: %v", where, e.Err)
}

func (e *StoppedError) Unwrap() error { return e.Err }

// ExitCode makes a stopped roll exit with 3.
func (e *StoppedError) ExitCode() int { return 3 }

// InterruptedError ends a roll that was interrupted (its context ended).
type InterruptedError struct {
	Node, Step string
	// Detail says what was left in which state.
	Detail string
}

func (e *InterruptedError) Error() string {
	if e.Node == "" {
		return "roll interrupted " + e.Detail + "; run it again to resume"
	}
	return fmt.Sprintf("roll interrupted at node %s (%s): %s; run it again to resume", e.Node, e.Step, e.Detail)
}

// ExitCode is 130, as for a shell's SIGINT.
func (e *InterruptedError) ExitCode() int { return 130 }

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
		cfg: cfg, m: m, claimed: map[string]bool{},
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
		if id := nodescollector.InstanceID(p.Node.Spec.ProviderID); id != "" {
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
		if id := nodescollector.InstanceID(nodes[i].Spec.ProviderID); id != "" {
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
		if st.Cordoned && st.Step.rank() < StepTerminating.rank() {
			if err := r.state.release(ctx, n); err != nil {
				return err
			}
			r.rep.linef("", "%s: uncordoned", n.Name)
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
		id := nodescollector.InstanceID(p.Node.Spec.ProviderID)
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
	fmt.Fprintf(r.cfg.Out, "dry run: for each node, %d at a time: wait for the gate's GO, ask the Eviction API (dry run) about its pods, cordon, drain, %s, wait until the evicted workloads are Running again; a failed launch stops the roll\n",
		r.cfg.MaxUnavailable, mode)
	for _, g := range r.groups {
		fmt.Fprintf(r.cfg.Out, "dry run: group %s: %s suspended while the roll runs (those not suspended already), resumed at its end\n", g, strings.Join(RollProcesses, ", "))
	}
	if r.plan.Canary > 0 && r.plan.Canary < len(r.plan.Nodes) {
		fmt.Fprintf(r.cfg.Out, "dry run: canary phase: nodes 1-%d, then a soak of %s (the gate evaluating every %s), then nodes %d-%d\n",
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

// replace takes one node from where it is to replaced.
func (r *roller) replace(ctx context.Context, p PlannedNode, nr NodeResult) (NodeResult, error) {
	began := r.cfg.Now()
	name := p.Name()
	n, err := r.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && p.State.Step.rank() >= StepTerminating.rank():
		n = p.Node // terminated and deleted: only the waits are left
	case err != nil:
		if ctx.Err() != nil {
			return nr, &InterruptedError{Node: name, Step: string(p.State.Step), Detail: "before touching the node"}
		}
		return nr, fmt.Errorf("reading node %s: %w", name, err)
	}
	st, err := readState(n)
	if err != nil {
		return nr, err
	}
	step := func(s Step, extra map[string]*string) error {
		bctx, cancel := background(ctx)
		defer cancel()
		updated, err := r.state.setStep(bctx, name, s, extra)
		if err != nil {
			return err
		}
		n = updated
		r.m.lastStep.WithLabelValues(name, string(s)).Set(float64(r.cfg.Now().Unix()))
		return nil
	}
	inst := p.Instance
	if inst.Group == "" {
		inst.Group = st.Group
	}
	d := &drainer{client: r.cfg.Client, o: r.cfg.Drain, now: r.cfg.Now,
		onEvicted: func(string) { r.m.evictions.WithLabelValues("evicted").Inc() },
		onRefused: func(string, string) { r.m.evictions.WithLabelValues("refused").Inc() },
		onGone: func(pod string, deleting time.Duration) {
			r.rep.linef(name, "pod %s counted as gone: evicted, its deletion deadline passed %s ago and the node's kubelet is unreachable", pod, seconds(deleting))
		},
	}

	// Before the cordon: would the Eviction API ever let every pod go?
	if st.Step.rank() < StepCordoned.rank() {
		pods, err := podsOn(ctx, r.cfg.Client, name)
		if err != nil {
			return nr, err
		}
		dp := planDrain(pods, r.cfg.Drain)
		if len(dp.Refused) > 0 {
			derr := &DrainError{Node: name, Refused: dp.Refused}
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v; node left as it was", derr)
			return nr, derr
		}
		refused, err := d.preflight(ctx, dp.Evict)
		if err != nil {
			if ctx.Err() != nil {
				return nr, &InterruptedError{Node: name, Step: string(StepPending), Detail: "before touching the node"}
			}
			return nr, err
		}
		if len(refused) > 0 {
			perr := &PreflightError{Node: name, Pods: refused}
			r.rep.linef(name, "%v", perr)
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v", perr)
			return nr, perr
		}
	}

	// Cordon.
	if st.Step.rank() < StepCordoned.rank() {
		t := r.cfg.Now()
		bctx, cancel := background(ctx)
		updated, err := r.state.cordon(bctx, n)
		cancel()
		if err != nil {
			return nr, err
		}
		n = updated
		nr.Cordon = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("cordon").Observe(nr.Cordon.Seconds())
		r.rep.linef(name, "cordoned")
		r.rep.event(ctx, n, false, ReasonCordoned, "cordoned by roll %s", r.plan.Roll)
		st.Step = StepCordoned
	}

	// Surge: a new node before the old one is drained. The surge node is
	// the instance the group launched for it, known by its id.
	surgeNode := st.SurgeNode
	if r.cfg.Surge && st.Step.rank() < StepDraining.rank() && surgeNode == "" {
		t := r.cfg.Now()
		var before map[string]bool
		requested, failSince := st.SurgeRequested, r.cfg.Now()
		if requested.IsZero() {
			if before, err = r.members(ctx, inst.Group); err != nil {
				return nr, r.abortDrain(ctx, n, err)
			}
			requested = r.cfg.Now()
			failSince = requested
			if err := step(StepSurging, nil); err != nil {
				return nr, err
			}
			bctx, cancel := background(ctx)
			desired, err := r.cfg.Provider.Surge(bctx, inst.Group)
			cancel()
			if err != nil {
				r.rep.event(ctx, n, true, ReasonSurge, "surge failed: %v", err)
				return nr, r.abortDrain(ctx, n, err)
			}
			if err := step(StepSurging, map[string]*string{AnnotationSurgeRequested: strp(requested.UTC().Format(time.RFC3339))}); err != nil {
				return nr, err
			}
			r.rep.linef(name, "asked group %s for one more instance (desired capacity %d)", inst.Group, desired)
			r.rep.event(ctx, n, false, ReasonSurge, "raised the desired capacity of %s by one, to %d", inst.Group, desired)
		} else {
			r.rep.linef(name, "waiting for the instance group %s launches for the surge asked at %s", inst.Group, requested.Format(time.RFC3339))
		}
		var surgeInst string
		surgeInst, surgeNode, err = r.waitLaunch(ctx, name, inst.Group, requested, failSince, before)
		if err != nil {
			if ctx.Err() != nil {
				return nr, &InterruptedError{Node: name, Step: string(StepSurging), Detail: "waiting for the surge node; the node stays cordoned and the group keeps its extra instance"}
			}
			var le *LaunchError
			if errors.As(err, &le) {
				le.Surge = true
				r.rep.event(ctx, n, true, ReasonStopped, "roll stopped: %v", le)
				return nr, r.abortDrain(ctx, n, le)
			}
			return nr, r.abortDrain(ctx, n, fmt.Errorf("surge for node %s: %w", name, err))
		}
		if err := step(StepSurging, map[string]*string{AnnotationSurge: strp(surgeNode), AnnotationSurgeInstance: strp(surgeInst)}); err != nil {
			return nr, err
		}
		nr.Surge = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("surge").Observe(nr.Surge.Seconds())
		r.rep.linef(name, "surge node %s (instance %s) Ready after %s", surgeNode, surgeInst, seconds(nr.Surge))
		r.rep.event(ctx, n, false, ReasonSurge, "surge node %s (instance %s) Ready", surgeNode, surgeInst)
	}

	loads := st.Workloads
	var replacement string
	if st.Step.rank() < StepTerminating.rank() {
		// Drain.
		t := r.cfg.Now()
		pods, err := podsOn(ctx, r.cfg.Client, name)
		if err != nil {
			return nr, r.abortDrain(ctx, n, err)
		}
		dp := planDrain(pods, r.cfg.Drain)
		if len(dp.Refused) > 0 {
			derr := &DrainError{Node: name, Refused: dp.Refused}
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v", derr)
			return nr, r.abortDrain(ctx, n, derr)
		}
		extra := map[string]*string{}
		if !st.HasLoads {
			if loads, err = snapshotWorkloads(ctx, r.cfg.Client, dp.Evict); err != nil {
				return nr, r.abortDrain(ctx, n, err)
			}
			enc, err := encodeWorkloads(loads)
			if err != nil {
				return nr, err
			}
			extra[AnnotationWorkloads] = strp(enc)
		}
		if err := step(StepDraining, extra); err != nil {
			return nr, r.abortDrain(ctx, n, err)
		}
		r.rep.linef(name, "draining: %d pod(s) to evict, %d skipped (DaemonSet, mirror); workloads: %s", len(dp.Evict), len(dp.Skipped), describeLoads(loads))
		r.rep.event(ctx, n, false, ReasonDraining, "draining %d pod(s) through the Eviction API", len(dp.Evict))
		evicted, err := d.drain(ctx, name)
		nr.Evicted = evicted
		if err != nil {
			if ctx.Err() != nil {
				if aerr := r.abortDrain(ctx, n, nil); aerr != nil {
					return nr, aerr
				}
				r.rep.event(ctx, n, true, ReasonInterrupted, "roll interrupted during the drain; node uncordoned (if the roll cordoned it), nothing terminated")
				return nr, &InterruptedError{Node: name, Step: string(StepDraining), Detail: fmt.Sprintf("drain stopped after %d eviction(s); the node was uncordoned and not terminated", evicted)}
			}
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v; node not terminated", err)
			return nr, r.abortDrain(ctx, n, err)
		}
		nr.Drain = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("drain").Observe(nr.Drain.Seconds())
		if err := step(StepDrained, nil); err != nil {
			return nr, err
		}
		r.rep.linef(name, "drained: %d pod(s) evicted in %s", evicted, seconds(nr.Drain))
		r.rep.event(ctx, n, false, ReasonDrained, "drained: %d pod(s) evicted in %s", evicted, seconds(nr.Drain))

		// Terminate. From here on the node is gone for good: the step is
		// recorded first, so a crash in between re-asks on resume.
		t = r.cfg.Now()
		var before map[string]bool
		if !r.cfg.Surge {
			if before, err = r.members(ctx, inst.Group); err != nil {
				return nr, err
			}
		}
		since := r.cfg.Now()
		if err := step(StepTerminating, nil); err != nil {
			return nr, err
		}
		if err := r.terminate(ctx, n, inst); err != nil {
			return nr, err
		}
		nr.Terminate = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("terminate").Observe(nr.Terminate.Seconds())
		if !r.cfg.Surge {
			t = r.cfg.Now()
			if _, replacement, err = r.waitLaunch(ctx, name, inst.Group, since, since, before); err != nil {
				return nr, r.replaceFailed(ctx, n, inst, err)
			}
			nr.Replace = r.cfg.Now().Sub(t)
		}
	} else {
		// Resumed after the termination was asked for.
		if p.HasInstance && p.Instance.InService {
			if err := r.terminate(ctx, n, inst); err != nil {
				return nr, err
			}
		}
		if !r.cfg.Surge {
			t := r.cfg.Now()
			if _, replacement, err = r.waitLaunch(ctx, name, inst.Group, st.StepTime, r.cfg.Now(), nil); err != nil {
				return nr, r.replaceFailed(ctx, n, inst, err)
			}
			nr.Replace = r.cfg.Now().Sub(t)
		}
	}
	if r.cfg.Surge {
		replacement = surgeNode
	}
	nr.Replacement = replacement

	// Workloads Running again.
	t := r.cfg.Now()
	if err := r.waitWorkloads(ctx, name, loads); err != nil {
		return nr, r.replaceFailed(ctx, n, inst, err)
	}
	nr.Replace += r.cfg.Now().Sub(t)
	r.m.steps.WithLabelValues("replace").Observe(nr.Replace.Seconds())
	nr.Total = r.cfg.Now().Sub(began)
	// The node object may be gone already; the state only matters while it
	// is not.
	if err := step(StepReplaced, nil); err != nil && !apierrors.IsNotFound(err) {
		r.cfg.Logger.Warn("could not record the replaced step", "node", name, "err", err)
	}
	msg := fmt.Sprintf("replaced by %s, %d workload(s) Running again; took %s: gate %s (%d evaluations), drain %s (%d pods), terminate %s, replacement and workloads %s",
		dash(replacement), len(loads), seconds(nr.Total+nr.Gate), seconds(nr.Gate), nr.GateEvaluations, seconds(nr.Drain), nr.Evicted, seconds(nr.Terminate), seconds(nr.Replace))
	if r.cfg.Surge {
		msg += fmt.Sprintf(", surge %s", seconds(nr.Surge))
	}
	r.rep.linef(name, "%s", msg)
	r.rep.event(ctx, n, false, ReasonReplaced, "%s", msg)
	return nr, nil
}

// terminate has the provider end the node's instance (after its drain).
func (r *roller) terminate(ctx context.Context, n *corev1.Node, inst Instance) error {
	bctx, cancel := background(ctx)
	defer cancel()
	if err := r.cfg.Provider.Terminate(bctx, inst, r.cfg.Surge); err != nil {
		r.rep.event(ctx, n, true, ReasonTerminating, "terminating instance %s failed: %v", inst.ID, err)
		return fmt.Errorf("node %s (drained, still cordoned): %w", n.Name, err)
	}
	how := "without decrementing the capacity: the group launches a replacement"
	if r.cfg.Surge {
		how = "decrementing the capacity (the surge node replaces it)"
	}
	r.rep.linef(n.Name, "terminating instance %s in group %s %s", inst.ID, inst.Group, how)
	r.rep.event(ctx, n, false, ReasonTerminating, "terminating instance %s in group %s %s", inst.ID, inst.Group, how)
	return nil
}

// abortDrain uncordons a node whose drain did not finish (when the roll
// cordoned it) and puts it back to pending; nothing was terminated.
func (r *roller) abortDrain(ctx context.Context, n *corev1.Node, cause error) error {
	bctx, cancel := background(ctx)
	defer cancel()
	cur, err := r.cfg.Client.CoreV1().Nodes().Get(bctx, n.Name, metav1.GetOptions{})
	if err == nil {
		err = r.state.release(bctx, cur)
	}
	if err != nil {
		err = fmt.Errorf("could not uncordon node %s after its drain stopped (uncordon it by hand): %w", n.Name, err)
		if cause != nil {
			return errors.Join(cause, err)
		}
		return err
	}
	if cause != nil {
		r.rep.linef(n.Name, "drain stopped, node uncordoned and not terminated: %v", cause)
	}
	return cause
}

func (r *roller) replaceFailed(ctx context.Context, n *corev1.Node, inst Instance, err error) error {
	var le *LaunchError
	if errors.As(err, &le) {
		r.rep.event(ctx, n, true, ReasonStopped, "roll stopped: %v", le)
		return le
	}
	if ctx.Err() != nil {
		return &InterruptedError{Node: n.Name, Step: string(StepTerminating),
			Detail: fmt.Sprintf("instance %s was terminated; waiting for its replacement and workloads", inst.ID)}
	}
	r.rep.event(ctx, n, true, ReasonStopped, "roll stopped: %v", err)
	return fmt.Errorf("node %s (instance %s terminated): %w", n.Name, inst.ID, err)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitWorkloads waits until the workloads evicted from the node have as many
// ready pods as before, none on the node.
func (r *roller) waitWorkloads(parent context.Context, old string, loads []Workload) error {
	if len(loads) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(parent, r.cfg.NodeTimeout)
	defer cancel()
	var missing []string
	for {
		m, err := workloadsBack(ctx, r.cfg.Client, loads, old)
		if err == nil {
			if len(m) == 0 {
				return nil
			}
			missing = m
		}
		select {
		case <-ctx.Done():
			if parent.Err() == nil {
				return fmt.Errorf("workloads not Running again within %s: %s", r.cfg.NodeTimeout, strings.Join(missing, "; "))
			}
			return ctx.Err()
		case <-time.After(r.cfg.Poll):
		}
	}
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
