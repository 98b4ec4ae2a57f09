package hold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// Config configures the controller.
type Config struct {
	// Gate evaluates the policy (gate.New); Consecutive and Interval are the
	// policy's.
	Gate        gate.Evaluator
	Consecutive int
	Interval    time.Duration
	// StopAfter turns a hold into STOP once the gate has not said GO for
	// this long (0: never). Only STOP cancels instance refreshes.
	StopAfter time.Duration
	// Targets are the rollouts to pause and restore; the readiness endpoint
	// needs none (Controller.Readiness).
	Targets []Target
	// Client records Events (nil: none).
	Client kubernetes.Interface
	// Anchor is the object that carries Events about what has no object of
	// its own (the leader Lease).
	Anchor corev1.ObjectReference
	// LeaderElection, when set, makes the targets follow the verdict only
	// while this replica holds the Lease; every replica evaluates and serves
	// /gate.
	LeaderElection *LeaderElection
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller evaluates the gate and applies its decisions.
type Controller struct {
	cfg    Config
	m      *metrics
	rep    *Reporter
	logger *slog.Logger

	// State of the consecutive rule and of STOP, touched by the loop only.
	streak     int
	notGoSince time.Time

	mu      sync.Mutex
	last    Decision
	lastAt  time.Time // when the last evaluation ended
	leading bool
	wake    chan struct{}
}

// New checks cfg and returns a controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Gate == nil {
		return nil, errors.New("hold: no gate")
	}
	if cfg.Consecutive < 1 {
		cfg.Consecutive = 2
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.StopAfter < 0 {
		return nil, fmt.Errorf("hold: stop-after %s: want 0 or more", cfg.StopAfter)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, m: m, logger: cfg.Logger, wake: make(chan struct{}, 1)}
	c.rep = &Reporter{client: cfg.Client, logger: cfg.Logger, m: m, anchor: cfg.Anchor}
	return c, nil
}

// decide applies the consecutive rule and STOP to one evaluation.
func (c *Controller) decide(e gate.Evaluation) Decision {
	now := c.cfg.Now()
	if e.Passed() {
		c.streak++
	} else {
		c.streak = 0
	}
	e.Consecutive = c.streak
	d := Decision{Evaluation: e}
	switch {
	case c.streak >= c.cfg.Consecutive:
		d.Action, d.Verdict = Release, gate.GO
		d.Evaluation.Note = ""
		c.notGoSince = time.Time{}
	default:
		if c.notGoSince.IsZero() {
			c.notGoSince = now
		}
		d.Action, d.Verdict = Keep, gate.WAIT
		if !e.Passed() {
			d.Action = Hold
		} else {
			d.Evaluation.Note = fmt.Sprintf("passed %d of %d consecutive evaluations", c.streak, c.cfg.Consecutive)
		}
		if c.cfg.StopAfter > 0 && now.Sub(c.notGoSince) >= c.cfg.StopAfter {
			d.Verdict = gate.STOP
			if d.Action == Hold {
				d.Evaluation.Note = fmt.Sprintf("no GO for %s (--stop-after)", now.Sub(c.notGoSince).Round(time.Second))
			}
		}
	}
	d.Evaluation.Verdict = d.Verdict
	return d
}

// Run evaluates every interval until ctx ends, and (while leading) applies
// each decision to the targets. With leader election it returns an error
// when the Lease is lost, so that the process exits and restarts clean.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.LeaderElection == nil {
		c.setLeading(true)
		c.loop(ctx)
		return nil
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); c.loop(lctx) }()
	err := c.cfg.LeaderElection.run(lctx, c)
	cancel()
	<-loopDone
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *Controller) setLeading(on bool) {
	c.mu.Lock()
	c.leading = on
	c.mu.Unlock()
	v := 0.0
	if on {
		v = 1
	}
	c.m.leader.Set(v)
	if on {
		// Apply the verdict now rather than an interval later.
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *Controller) isLeading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

func (c *Controller) loop(ctx context.Context) {
	for ctx.Err() == nil {
		begin := time.Now()
		c.step(ctx)
		wait := c.cfg.Interval - time.Since(begin)
		if wait < 0 {
			wait = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		case <-c.wake:
			t.Stop()
		}
	}
}

// step is one evaluation, its decision and (while leading) its application.
func (c *Controller) step(ctx context.Context) {
	e, err := c.cfg.Gate.Evaluate(ctx, "")
	if err != nil {
		return // ctx ended
	}
	c.mu.Lock()
	prev := c.last
	c.mu.Unlock()
	d := c.decide(e)
	c.mu.Lock()
	c.last, c.lastAt = d, time.Now()
	c.mu.Unlock()
	c.m.lastEval.SetToCurrentTime()
	c.m.evaluations.WithLabelValues(string(d.Verdict)).Inc()
	for _, v := range []gate.Verdict{gate.GO, gate.WAIT, gate.STOP} {
		val := 0.0
		if v == d.Verdict {
			val = 1
		}
		c.m.verdict.WithLabelValues(string(v)).Set(val)
	}
	level := slog.LevelDebug
	if prev.Verdict != d.Verdict {
		level = slog.LevelInfo
	}
	c.logger.Log(ctx, level, "hold decision", "verdict", d.Verdict, "action", d.Action, "passed", e.Passed(),
		"consecutive", d.Evaluation.Consecutive, "unreachable", e.Unreachable, "reasons", d.Reasons())
	c.readinessChanged(ctx, prev, d)
	if !c.isLeading() {
		return
	}
	for _, t := range c.cfg.Targets {
		if err := t.Apply(ctx, d, c.rep); err != nil && ctx.Err() == nil {
			c.m.applyErrors.WithLabelValues(t.Kind()).Inc()
			c.logger.Warn("could not apply the decision; retried at the next evaluation", "kind", t.Kind(), "action", d.Action, "err", err)
		}
	}
}

// Last returns the last decision and when it was made (zero before the
// first evaluation).
func (c *Controller) Last() (Decision, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.lastAt
}

// Reporter is the controller's reporter, for applying decisions outside
// Run (tests, and tools that drive a target themselves).
func (c *Controller) Reporter() *Reporter { return c.rep }
