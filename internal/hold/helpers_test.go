package hold

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// script is a gate.Evaluator whose evaluations the test sets.
type script struct {
	mu   sync.Mutex
	pass bool
	down bool // the monitoring is unreachable
	n    int
}

func (s *script) set(pass bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pass = pass
}

func (s *script) Evaluate(ctx context.Context, node string) (gate.Evaluation, error) {
	if err := ctx.Err(); err != nil {
		return gate.Evaluation{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return evaluation(s.pass, s.down), nil
}

func evaluation(pass, down bool) gate.Evaluation {
	switch {
	case down:
		return gate.Evaluation{Unreachable: true, Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Unknown, Why: "connection refused"}}}
	case pass:
		return gate.Evaluation{Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Pass}}}
	}
	return gate.Evaluation{Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Fail, Why: "TestFault firing"}}}
}

func holdDecision() Decision {
	return Decision{Action: Hold, Verdict: gate.WAIT, Evaluation: evaluation(false, false)}
}

func releaseDecision() Decision {
	e := evaluation(true, false)
	e.Consecutive = 2
	return Decision{Action: Release, Verdict: gate.GO, Evaluation: e}
}

// reporter returns a Reporter on a fresh registry, recording Events in
// client, and the registry.
func reporter(t *testing.T, client *fake.Clientset) (*Reporter, *prometheus.Registry, *strings.Builder) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	r := &Reporter{logger: logger, m: m, anchor: corev1.ObjectReference{Kind: "Lease", Namespace: "upgradeguard", Name: "upgradeguard-hold"}}
	if client != nil {
		r.client = client
	}
	return r, reg, &logs
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// events returns the reasons and messages of the Events recorded.
func events(t *testing.T, client *fake.Clientset) []corev1.Event {
	t.Helper()
	l, err := client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func gauge(t *testing.T, reg *prometheus.Registry, name, target string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == target {
					if m.Gauge != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
