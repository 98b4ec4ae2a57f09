package roll

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// CanaryError stops a roll whose canary soak saw an evaluation of the gate
// that did not pass: the new configuration is not trusted on more nodes.
type CanaryError struct {
	After time.Duration // into the soak
	Last  gate.Evaluation
}

func (e *CanaryError) Error() string {
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
// (every GateWait.Interval); the first evaluation that does not pass ends it
// with a *CanaryError. A soak interrupted is held again in full by the next
// run: time nobody watched does not count. When it passes, the other nodes
// record it, so a later interruption does not repeat it.
func (r *roller) soak(ctx context.Context, d time.Duration, rest []PlannedNode) error {
	interval := r.cfg.GateWait.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	began := r.cfg.Now()
	r.rep.linef("", "canary soak: holding %s with the gate evaluating every %s; any evaluation that does not pass stops the roll", d, interval)
	r.m.paused.Set(1)
	defer r.m.paused.Set(0)
	evals := 0
	nextReport := began.Add(d / 4)
	for {
		e, err := r.cfg.Gate.Evaluate(ctx, "")
		if err != nil {
			if ctx.Err() != nil {
				return &InterruptedError{Detail: fmt.Sprintf("during the canary soak (%s of %s held; the next run holds it again in full)", seconds(r.cfg.Now().Sub(began)), d)}
			}
			return err
		}
		evals++
		r.m.evaluations.WithLabelValues(verdictOf(e)).Inc()
		took := r.cfg.Now().Sub(began)
		if !e.Passed() {
			cerr := &CanaryError{After: took, Last: e}
			r.rep.linef("", "canary soak failed after %s (%d evaluations): %s", seconds(took), evals, strings.Join(e.Reasons(), "; "))
			for _, p := range rest {
				r.rep.event(ctx, p.Node, true, ReasonStopped, "%v", cerr)
			}
			return cerr
		}
		if took >= d {
			r.rep.linef("", "canary soak passed: %s, %d evaluations, all passing; going on with %d node(s)", seconds(took), evals, len(rest))
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
		if now := r.cfg.Now(); !now.Before(nextReport) {
			r.rep.linef("", "canary soak: %s of %s, %d evaluations, all passing", seconds(took), d, evals)
			nextReport = now.Add(d / 4)
		}
		select {
		case <-ctx.Done():
			return &InterruptedError{Detail: fmt.Sprintf("during the canary soak (%s of %s held; the next run holds it again in full)", seconds(r.cfg.Now().Sub(began)), d)}
		case <-time.After(min(interval, max(d-took, time.Millisecond))):
		}
	}
}

// verdictOf labels a single evaluation for the evaluations metric.
func verdictOf(e gate.Evaluation) string {
	if e.Passed() {
		return string(gate.GO)
	}
	return string(gate.WAIT)
}
