package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Baseline is the set of alerts firing when the upgrade began. Those alerts
// are reported but do not block, unless their severity changes.
type Baseline struct {
	Time   time.Time       `json:"time"`
	Alerts []BaselineAlert `json:"alerts"`
}

// BaselineAlert is one firing alert: its labels (alertname, severity and
// the rest, without alertstate).
type BaselineAlert struct {
	Labels map[string]string `json:"labels"`
}

// LoadBaseline reads a baseline file written by WriteBaseline.
func LoadBaseline(path string) (*Baseline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline file: %w", err)
	}
	var bl Baseline
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bl); err != nil {
		return nil, fmt.Errorf("baseline file %s: %w", path, err)
	}
	for i, a := range bl.Alerts {
		if a.Labels["alertname"] == "" {
			return nil, fmt.Errorf("baseline file %s: alerts[%d] has no alertname label", path, i)
		}
	}
	return &bl, nil
}

// WriteBaseline writes b to path as JSON.
func WriteBaseline(path string, b *Baseline) error {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the baseline: %w", err)
	}
	return nil
}

// alertKey identifies an alert across evaluations: its labels without
// alertstate, severity and the replica labels.
func alertKey(labels map[string]string, replicaLabels []string) string {
	skip := map[string]bool{"__name__": true, "alertstate": true, "severity": true}
	for _, r := range replicaLabels {
		skip[r] = true
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if !skip[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%q,", k, labels[k])
	}
	return sb.String()
}

// severities maps each baseline alert to its severity.
func (b *Baseline) severities(replicaLabels []string) map[string]string {
	out := map[string]string{}
	if b == nil {
		return out
	}
	for _, a := range b.Alerts {
		out[alertKey(a.Labels, replicaLabels)] = a.Labels["severity"]
	}
	return out
}

// Snapshot returns the alerts firing now (except those that never block:
// the ignored, always-firing and upgrade-in-progress ones),
// for a baseline taken when the upgrade begins. Any doubt about the answer
// (an error, a partial response) is an error: a baseline must be complete.
func (g *Gate) Snapshot(ctx context.Context) (*Baseline, error) {
	at := g.cfg.Now()
	s := &evalState{g: g, at: at, sem: make(chan struct{}, 1)}
	parts := []string{`alertstate="firing"`}
	for _, m := range g.policy.matchers {
		parts = append(parts, m.String())
	}
	q := "ALERTS{" + strings.Join(parts, ", ") + "}"
	res, err := s.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("taking the alert baseline (%s): %w", q, err)
	}
	ignore := map[string]bool{}
	for _, n := range g.policy.Alerts.Ignore {
		ignore[n] = true
	}
	for n := range alwaysFiring {
		ignore[n] = true
	}
	for _, n := range g.policy.Alerts.UpgradeInProgress {
		ignore[n] = true
	}
	b := &Baseline{Time: at.UTC(), Alerts: []BaselineAlert{}}
	seen := map[string]bool{}
	for _, smp := range res.samples {
		if ignore[smp.labels["alertname"]] {
			continue
		}
		l := map[string]string{}
		for k, v := range smp.labels {
			if k != "__name__" && k != "alertstate" {
				l[k] = v
			}
		}
		k := alertKey(l, g.cfg.ReplicaLabels) + l["severity"]
		if !seen[k] {
			seen[k] = true
			b.Alerts = append(b.Alerts, BaselineAlert{Labels: l})
		}
	}
	sort.Slice(b.Alerts, func(i, j int) bool {
		return alertKey(b.Alerts[i].Labels, nil) < alertKey(b.Alerts[j].Labels, nil)
	})
	return b, nil
}
