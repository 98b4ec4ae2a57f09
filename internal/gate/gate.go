// Package gate answers, before a node is replaced, whether it is safe right
// now: it asks Prometheus or Thanos Query about the exporter's metrics, ALERTS
// and up, and turns the answers into a verdict. Missing, partial or
// unreadable data is UNKNOWN, and UNKNOWN is never GO.
package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/config"
)

// Verdict is the gate's answer.
type Verdict string

// The verdicts: GO (replace the node), WAIT (not now), STOP (gave up at the
// deadline of Wait).
const (
	GO   Verdict = "GO"
	WAIT Verdict = "WAIT"
	STOP Verdict = "STOP"
)

// Status is the outcome of one check.
type Status string

// The statuses of a check. Only PASS and SKIP (a check that does not apply,
// such as drain without a node) let an evaluation be GO.
const (
	Pass    Status = "PASS"
	Fail    Status = "FAIL"
	Unknown Status = "UNKNOWN"
	Skip    Status = "SKIP"
)

// CheckResult is the outcome of one check of one evaluation.
type CheckResult struct {
	Name      string `json:"name"`                // e.g. "alerts", "nodes/ready", "custom/etcd-quorum"
	Query     string `json:"query,omitempty"`     // the PromQL the check read
	Value     string `json:"value,omitempty"`     // what it saw, for humans
	Threshold string `json:"threshold,omitempty"` // what it needed
	Status    Status `json:"status"`
	Why       string `json:"why,omitempty"` // why it failed or is unknown; notes on a pass
}

// Evaluation is one evaluation of every check of the policy.
type Evaluation struct {
	Verdict Verdict `json:"verdict"`
	Node    string  `json:"node,omitempty"`
	// NodeGroup is the node group judged when no node is (Config.NodeGroup).
	NodeGroup string        `json:"nodegroup,omitempty"`
	Checks    []CheckResult `json:"checks"`
	Time      time.Time     `json:"time"` // the evaluation time sent with every query
	// Duration is how long the evaluation took; Queries how many HTTP
	// requests it made (PromQL queries and the Thanos store list).
	Duration time.Duration `json:"duration_ns"`
	Queries  int           `json:"queries"`
	// Unreachable is set when a request could not get an answer from the
	// monitoring: connection errors, timeouts, HTTP 5xx, a body that is not
	// the Prometheus API.
	Unreachable bool `json:"unreachable"`
	// Consecutive is the number of passing evaluations in a row so far
	// (set by Wait and by the gate check command).
	Consecutive int `json:"consecutive"`
	// Note says why a passing evaluation is not (yet) GO, or why Wait stopped.
	Note string `json:"note,omitempty"`
}

// Passed reports whether every check passed or was skipped in this
// evaluation, with at least one passing.
func (e Evaluation) Passed() bool {
	passed := false
	for _, c := range e.Checks {
		switch c.Status {
		case Pass:
			passed = true
		case Skip:
		default:
			return false
		}
	}
	return passed
}

// Reasons returns one line per failing or unknown check.
func (e Evaluation) Reasons() []string {
	var out []string
	for _, c := range e.Checks {
		if c.Status == Pass || c.Status == Skip {
			continue
		}
		line := fmt.Sprintf("%s %s", c.Name, c.Status)
		if c.Why != "" {
			line += ": " + c.Why
		}
		out = append(out, line)
	}
	if len(e.Checks) == 0 {
		out = append(out, "no check was evaluated")
	}
	return out
}

// Evaluator evaluates the gate once for a node ("" for none).
type Evaluator interface {
	// Evaluate returns one evaluation. Failed queries are UNKNOWN checks of
	// the evaluation, not errors; the error is only set when ctx ended.
	Evaluate(ctx context.Context, node string) (Evaluation, error)
}

// Config says how to reach the monitoring.
type Config struct {
	// URL of Thanos Query or Prometheus (the part before /api/v1).
	URL string
	// Kind is "thanos", "prometheus" or "auto" (default): auto asks
	// /api/v1/stores, which only Thanos Query answers.
	Kind string
	// HTTP carries TLS, bearer token (file), basic auth and extra headers
	// such as X-Scope-OrgID.
	HTTP config.HTTPClientConfig
	// Client, when set, is used instead of one built from HTTP.
	Client *http.Client
	// QueryTimeout bounds each request (default 20s); it is also sent to
	// the server as the query's timeout parameter.
	QueryTimeout time.Duration
	// ReplicaLabels are the external labels that tell replicas of the same
	// Prometheus apart (Thanos Query's --query.replica-label); default
	// "replica" and "prometheus_replica".
	ReplicaLabels []string
	// Concurrency is how many queries of an evaluation run at once
	// (default 4).
	Concurrency int
	// Baseline holds the alerts that were firing when the upgrade began.
	Baseline *Baseline
	// NodeGroup, when set and no node is given to Evaluate, names the node
	// group about to be replaced (the nodegroup label of
	// upgradeguard_node_info): every node of it must be drainable, at least
	// in steps.
	NodeGroup string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultReplicaLabels returns the external labels that tell replicas apart
// when none are configured: Prometheus Operator's prometheus_replica, the
// common replica, and Thanos Ruler's ruler_replica.
func DefaultReplicaLabels() []string {
	return []string{"replica", "prometheus_replica", "ruler_replica"}
}

// Kinds of monitoring API.
const (
	KindAuto       = "auto"
	KindThanos     = "thanos"
	KindPrometheus = "prometheus"
)

// Gate evaluates a policy against Prometheus or Thanos Query.
type Gate struct {
	cfg    Config
	policy Policy
	logger *slog.Logger
	client *http.Client
	mu     sync.Mutex
	kind   string // resolved kind; "" until auto is resolved
}

// New checks cfg and policy and returns a Gate.
func New(cfg Config, policy Policy, logger *slog.Logger) (*Gate, error) {
	if cfg.URL == "" {
		return nil, errors.New("gate: no monitoring URL")
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("gate: monitoring URL %q: want http:// or https://", cfg.URL)
	}
	switch cfg.Kind {
	case "":
		cfg.Kind = KindAuto
	case KindAuto, KindThanos, KindPrometheus:
	default:
		return nil, fmt.Errorf("gate: kind %q: want auto, thanos or prometheus", cfg.Kind)
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 20 * time.Second
	}
	if len(cfg.ReplicaLabels) == 0 {
		cfg.ReplicaLabels = DefaultReplicaLabels()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := policy.validate(); err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		if err := cfg.HTTP.Validate(); err != nil {
			return nil, fmt.Errorf("gate: HTTP client configuration: %w", err)
		}
		c, err := config.NewClientFromConfig(cfg.HTTP, "upgradeguard-gate")
		if err != nil {
			return nil, fmt.Errorf("gate: HTTP client configuration: %w", err)
		}
		client = c
	}
	g := &Gate{cfg: cfg, policy: policy, logger: logger, client: client}
	if cfg.Kind != KindAuto {
		g.kind = cfg.Kind
	}
	return g, nil
}

// WaitOptions configure Wait.
type WaitOptions struct {
	// Consecutive passing evaluations needed for GO (default 2).
	Consecutive int
	// Interval between evaluations (default 30s).
	Interval time.Duration
	// Timeout ends the wait in STOP; 0 waits until ctx ends.
	Timeout time.Duration
	// OnEvaluation, when set, sees every evaluation (after Verdict,
	// Consecutive and Note are set).
	OnEvaluation func(Evaluation)
}

// TimeoutError is Wait's error when the timeout passed before GO. Last is
// the last evaluation, with Verdict STOP.
type TimeoutError struct {
	Timeout time.Duration
	Last    Evaluation
}

func (e *TimeoutError) Error() string {
	r := e.Last.Reasons()
	if e.Last.Passed() {
		r = []string{e.Last.Note}
	}
	return fmt.Sprintf("gate: no GO within %s: %s", e.Timeout, strings.Join(r, "; "))
}

// Wait evaluates until o.Consecutive evaluations in a row pass, spaced by
// o.Interval, and returns the last one with Verdict GO. When o.Timeout
// passes first, it returns the last evaluation with Verdict STOP and a
// *TimeoutError; when ctx ends, the last evaluation and ctx's error.
func Wait(ctx context.Context, ev Evaluator, node string, o WaitOptions) (Evaluation, error) {
	if o.Consecutive <= 0 {
		o.Consecutive = 2
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	var last Evaluation
	stop := func() (Evaluation, error) {
		last.Verdict = STOP
		if last.Note == "" || last.Passed() {
			last.Note = fmt.Sprintf("timeout %s passed before %d consecutive passing evaluations", o.Timeout, o.Consecutive)
		}
		if o.OnEvaluation != nil {
			o.OnEvaluation(last)
		}
		return last, &TimeoutError{Timeout: o.Timeout, Last: last}
	}
	streak := 0
	for {
		e, err := ev.Evaluate(wctx, node)
		if err != nil {
			if ctx.Err() != nil {
				if last.Checks == nil {
					last = e
				}
				return last, ctx.Err()
			}
			if wctx.Err() != nil {
				if last.Checks == nil {
					last = e
				}
				return stop()
			}
			return e, err
		}
		if e.Passed() {
			streak++
		} else {
			streak = 0
		}
		e.Consecutive = streak
		if streak >= o.Consecutive {
			e.Verdict = GO
			e.Note = ""
			if o.OnEvaluation != nil {
				o.OnEvaluation(e)
			}
			return e, nil
		}
		e.Verdict = WAIT
		if e.Passed() {
			e.Note = fmt.Sprintf("passed %d of %d consecutive evaluations", streak, o.Consecutive)
		}
		last = e
		if o.OnEvaluation != nil {
			o.OnEvaluation(e)
		}
		t := time.NewTimer(o.Interval)
		select {
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return stop()
		}
	}
}
