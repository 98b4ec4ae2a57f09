package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// ReadinessTarget is the target name of the /gate endpoint in metrics and
// Events.
const ReadinessTarget = "kops-readiness"

// staleAfter is how old the last evaluation may be before /gate stops
// answering 200: a loop that is stuck must not keep a stale GO.
func (c *Controller) staleAfter() time.Duration { return 3*c.cfg.Interval + time.Minute }

// Ready returns nil while this replica's last decision is GO and fresh, and
// an error saying why not otherwise (WAIT, STOP, no evaluation yet, or the
// last one older than three intervals and a minute). It is /gate's status;
// deploy/hold makes /gate (on the unauthenticated health listener) the
// readiness probe of a system-cluster-critical pod: kops' cluster
// validation requires such pods to be ready.
func (c *Controller) Ready() error {
	d, at := c.Last()
	switch {
	case at.IsZero():
		return errors.New("WAIT: no evaluation yet")
	case time.Since(at) > c.staleAfter():
		return fmt.Errorf("WAIT: the last evaluation is %s old", time.Since(at).Round(time.Second))
	case d.Verdict != gate.GO:
		return fmt.Errorf("%s: %s", d.Verdict, d.Reasons())
	}
	return nil
}

// Readiness is the /gate endpoint: the status of Ready (200 or 503) with
// the decision as JSON.
func (c *Controller) Readiness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		d, at := c.Last()
		status, why := http.StatusOK, ""
		verdict := d.Verdict
		if err := c.Ready(); err != nil {
			status, why = http.StatusServiceUnavailable, err.Error()
			if verdict == "" || verdict == gate.GO {
				verdict = gate.WAIT // none yet, or stale
			}
			why = strings.TrimPrefix(why, string(verdict)+": ")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			Verdict     gate.Verdict `json:"verdict"`
			Why         string       `json:"why,omitempty"`
			Consecutive int          `json:"consecutive"`
			Time        time.Time    `json:"time,omitzero"`
		}{verdict, why, d.Evaluation.Consecutive, at})
	})
}

// readinessChanged records the /gate endpoint's pauses and resumptions.
func (c *Controller) readinessChanged(ctx context.Context, prev, d Decision) {
	wasGO, isGO := prev.Verdict == gate.GO, d.Verdict == gate.GO
	first := prev.Verdict == ""
	switch {
	case isGO && (first || !wasGO):
		c.rep.Active(ReadinessTarget, false)
		if !first {
			c.m.transitions.WithLabelValues(ReadinessTarget, "resume").Inc()
			if c.isLeading() {
				c.rep.event(ctx, nil, "Normal", ReasonResumed, fmt.Sprintf("%s: /gate answers 200 (gate GO after %d passing evaluations in a row)", ReadinessTarget, d.Evaluation.Consecutive))
			}
			c.logger.Info("resumed", "target", ReadinessTarget, "verdict", d.Verdict, "what", "/gate answers 200")
		}
	case !isGO && (first || wasGO):
		c.rep.Active(ReadinessTarget, true)
		if !first {
			c.m.transitions.WithLabelValues(ReadinessTarget, "pause").Inc()
			if c.isLeading() {
				c.rep.event(ctx, nil, "Normal", ReasonPaused, fmt.Sprintf("%s: /gate answers 503 (gate %s: %s)", ReadinessTarget, d.Verdict, d.Reasons()))
			}
			c.logger.Info("paused", "target", ReadinessTarget, "verdict", d.Verdict, "what", "/gate answers 503", "reasons", d.Evaluation.Reasons())
		}
	}
}
