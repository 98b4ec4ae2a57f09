package roll

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// CanaryError stops a roll whose canary did not pass: an evaluation of the
// gate during the soak that did not pass, or what runs on the canary's new
// nodes (Findings: a pod there not Ready, restarting or unable to start
// while its workload is healthy elsewhere, a new node not Ready, a pod stuck
// Pending for it). The new configuration is not trusted on more nodes.
type CanaryError struct {
	After time.Duration // into the soak
	Last  gate.Evaluation
	// Node is the canary node whose replacement was judged while the roll
	// waited for its workloads, before the soak ("" during the soak).
	Node     string
	Findings []CanaryFinding
}

func (e *CanaryError) Error() string {
	if len(e.Findings) > 0 {
		fs := make([]string, len(e.Findings))
		for i, f := range e.Findings {
			fs[i] = f.String()
		}
		where := fmt.Sprintf("during the canary soak, %s in", seconds(e.After))
		if e.Node != "" {
			where = fmt.Sprintf("after canary node %s was replaced, before the soak", e.Node)
		}
		return fmt.Sprintf("roll stopped %s: the canary's new node(s) are not healthy: %s", where, strings.Join(fs, "; "))
	}
	return fmt.Sprintf("roll stopped during the canary soak, %s in: the gate's evaluation did not pass: %s",
		seconds(e.After), strings.Join(e.Last.Reasons(), "; "))
}

// ExitCode makes a failed soak exit with 3, as a gate STOP.
func (e *CanaryError) ExitCode() int { return 3 }

// phases splits the plan's nodes into the canary phase and the rest. A new
// plan takes its first Canary nodes; a resumed one its nodes' recorded
// phases. soak is the canary soak still to hold (0: none, or passed).
func (r *roller) phases() (canary, rest []PlannedNode, soak time.Duration) {
	for _, p := range r.plan.Nodes {
		switch p.State.Phase {
		case PhaseCanary:
			canary = append(canary, p)
		default:
			rest = append(rest, p)
			if p.State.Phase == PhaseMain && !p.State.Soaked {
				soak = max(soak, p.State.Soak)
			}
		}
	}
	return canary, rest, soak
}

// soak holds the roll for d while the gate keeps evaluating the cluster
// (every GateWait.Interval) and the canary's new nodes are judged from the
// API (canary_judge.go); the first evaluation that does not pass, or the
// first finding on a new node, ends it with a *CanaryError. When its time
// is up, it still waits for the pods on the new nodes that are within their
// start-up grace then, until each is Ready or its grace ends. A soak
// interrupted is held again in full by the next run: time nobody watched
// does not count. When it passes, the other nodes record it, so a later
// interruption does not repeat it.
func (r *roller) soak(ctx context.Context, d time.Duration, rest []PlannedNode) error {
	interval := r.cfg.GateWait.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	began := r.cfg.Now()
	r.mu.Lock()
	judge := newCanaryJudge(r.cfg.Client, r.cfg.Now, maps.Clone(r.canaryNew), slices.Clone(r.canaryLoads))
	r.mu.Unlock()
	judge.since, judge.after = began, r.rep.start
	newNodes := "no new canary node is known (none is recorded on the nodes): the gate alone judges"
	if len(judge.nodes) > 0 {
		var parts []string
		for _, n := range judge.names() {
			parts = append(parts, n+" (replacing "+dash(judge.nodes[n])+")")
		}
		newNodes = "judging the new node(s) " + strings.Join(parts, ", ") + ": every pod there Ready or Succeeded, none restarting, the nodes Ready, no pod Pending for them"
	}
	r.rep.linef("", "canary soak: holding %s with the gate evaluating every %s; any evaluation that does not pass stops the roll; %s", d, interval, newNodes)
	r.m.paused.Set(1)
	defer r.m.paused.Set(0)
	evals := 0
	nextReport := began.Add(d / 4)
	interrupted := func() error {
		return &InterruptedError{Detail: fmt.Sprintf("during the canary soak (%s of %s held; the next run holds it again in full)", seconds(r.cfg.Now().Sub(began)), d)}
	}
	fail := func(cerr *CanaryError, took time.Duration, why string) error {
		r.rep.linef("", "canary soak failed after %s (%d evaluations): %s", seconds(took), evals, why)
		for _, p := range rest {
			r.rep.event(ctx, p.Node, true, ReasonStopped, "%v", cerr)
		}
		return cerr
	}
	excused := map[string]bool{}
	var awaited map[string]time.Time // pods still starting when the time was up
	judgeErrs := 0                   // in a row
	for {
		e, err := r.cfg.Gate.Evaluate(ctx, "")
		if err != nil {
			if ctx.Err() != nil {
				return interrupted()
			}
			return err
		}
		evals++
		r.m.evaluations.WithLabelValues(verdictOf(e)).Inc()
		took := r.cfg.Now().Sub(began)
		if !e.Passed() {
			return fail(&CanaryError{After: took, Last: e}, took, strings.Join(e.Reasons(), "; "))
		}
		v, err := judge.judge(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return interrupted()
		case err != nil:
			judgeErrs++
			r.rep.linef("", "canary soak: could not judge the new nodes: %v", err)
			if took >= d && judgeErrs >= 3 {
				return fmt.Errorf("canary soak: its time is up and the canary's new nodes could not be judged (3 times in a row; a soak is never passed unjudged): %w", err)
			}
		default:
			judgeErrs = 0
		}
		if len(v.Findings) > 0 {
			cerr := &CanaryError{After: r.cfg.Now().Sub(began), Last: e, Findings: v.Findings}
			fs := make([]string, len(v.Findings))
			for i, f := range v.Findings {
				fs[i] = f.String()
			}
			return fail(cerr, cerr.After, "the canary's new node(s) are not healthy: "+strings.Join(fs, "; "))
		}
		for _, x := range v.Excused {
			if !excused[x] {
				excused[x] = true
				r.rep.linef("", "canary soak: not held against the canary (its workload is not healthy elsewhere either; the gate judges that): %s", x)
			}
		}
		if took >= d && judgeErrs == 0 {
			if awaited == nil {
				awaited = v.Starting
			}
			var still []string
			for pod, until := range awaited {
				if _, ok := v.Starting[pod]; ok {
					still = append(still, fmt.Sprintf("%s (grace until %s)", pod, until.Format(time.TimeOnly)))
				}
			}
			if len(still) == 0 {
				r.rep.linef("", "canary soak passed: %s, %d evaluations, all passing; %d pod(s) on the new node(s), none failing; going on with %d node(s)", seconds(took), evals, v.Pods, len(rest))
				stamp := strp(r.cfg.Now().UTC().Format(time.RFC3339))
				for i := range rest {
					bctx, cancel := background(ctx)
					if _, err := r.state.patch(bctx, rest[i].Name(), map[string]*string{AnnotationSoaked: stamp}, nil); err != nil {
						r.cfg.Logger.Warn("could not record the passed soak", "node", rest[i].Name(), "err", err)
					}
					cancel()
					rest[i].State.Soaked = true
				}
				return nil
			}
			sort.Strings(still)
			if now := r.cfg.Now(); !now.Before(nextReport) {
				r.rep.linef("", "canary soak: %s held; waiting for pod(s) still starting on the new node(s): %s", seconds(took), strings.Join(still, ", "))
				nextReport = now.Add(d / 4)
			}
		} else if now := r.cfg.Now(); !now.Before(nextReport) {
			r.rep.linef("", "canary soak: %s of %s, %d evaluations, all passing; %d pod(s) on the new node(s), none failing", seconds(took), d, evals, v.Pods)
			nextReport = now.Add(d / 4)
		}
		select {
		case <-ctx.Done():
			return interrupted()
		case <-time.After(soakWait(interval, d, took)):
		}
	}
}

// soakWait is the pause before the soak's next evaluation: the interval,
// shortened to end at the soak's time; after that (pods still starting)
// the interval again.
func soakWait(interval, d, took time.Duration) time.Duration {
	if took >= d {
		return interval
	}
	return min(interval, d-took)
}

// noteCanaryNode records that newNode replaced the canary node old, with
// the workloads its drain evicted: the soak judges newNode, and the main
// nodes keep it in AnnotationCanaryNodes for a re-run.
func (r *roller) noteCanaryNode(ctx context.Context, newNode, old string, loads []Workload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.canaryLoads = append(r.canaryLoads, loads...)
	if r.canaryNew[newNode] == old {
		return
	}
	r.canaryNew[newNode] = old
	enc := encodeCanaryNodes(r.canaryNew)
	for _, p := range r.plan.Nodes {
		if p.State.Phase != PhaseMain {
			continue
		}
		bctx, cancel := background(ctx)
		if _, err := r.state.patch(bctx, p.Name(), map[string]*string{AnnotationCanaryNodes: &enc}, nil); err != nil {
			r.cfg.Logger.Warn("could not record the canary's new node", "node", p.Name(), "err", err)
		}
		cancel()
	}
}

// canaryWaitJudge is the judge of a canary node's replacement while the
// roll waits for its workloads (nil for a node of the main phase): a pod
// there that cannot run stops the roll before the soak, instead of the
// wait running into its timeout.
func (r *roller) canaryWaitJudge(ctx context.Context, p PlannedNode, replacement string, loads []Workload) *canaryJudge {
	if p.State.Phase != PhaseCanary || replacement == "" {
		return nil
	}
	r.noteCanaryNode(ctx, replacement, p.Name(), loads)
	j := newCanaryJudge(r.cfg.Client, r.cfg.Now, map[string]string{replacement: p.Name()}, loads)
	j.after = r.rep.start
	return j
}

// verdictOf labels a single evaluation for the evaluations metric.
func verdictOf(e gate.Evaluation) string {
	if e.Passed() {
		return string(gate.GO)
	}
	return string(gate.WAIT)
}
