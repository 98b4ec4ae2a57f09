package nodes

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// fakeClock is the exporter's clock in a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// heartbeatAge scrapes the collector and returns node's heartbeat age.
func heartbeatAge(t *testing.T, c *Collector, node string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors.AsPrometheus(c, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "upgradeguard_node_heartbeat_age_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue(m, "node") == node {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// renew plays the kubelet: it sets the node's Lease renewTime to the
// kubelet's clock, exporter clock + skew, and waits until the collector has
// observed it.
func renew(t *testing.T, f *fixture, clock *fakeClock, name string, skew time.Duration) {
	t.Helper()
	ctx := context.Background()
	l, err := f.client.CoordinationV1().Leases(kube.NodeLeaseNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := clock.Now().Add(skew)
	l.Spec.RenewTime = &metav1.MicroTime{Time: at}
	if _, err := f.client.CoordinationV1().Leases(kube.NodeLeaseNamespace).Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "renewal of "+name+" observed", func() bool {
		// The Lease handler observes the renewal and moves the rendered
		// series' probe time under c.mu: both or neither are seen.
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		hb, _ := f.c.heartbeats.get(name)
		return hb.renew.Equal(at)
	})
}

// The heartbeat age is measured on the exporter's clock
// from the moment it sees renewTime change, as the node lifecycle controller
// does, so a kubelet's clock skew does not show.
func TestHeartbeatAgeIgnoresKubeletClockSkew(t *testing.T) {
	clock := &fakeClock{t: now}
	f := start(t, Options{Now: clock.Now},
		node("behind", corev1.ConditionTrue), lease("behind", time.Minute, 40),
		node("ahead", corev1.ConditionTrue), lease("ahead", -time.Minute, 40),
		node("dies", corev1.ConditionTrue), lease("dies", 0, 40))

	// A minute of renewals every 10 s, each scraped 0, 3 and 9.5 s after.
	for range 6 {
		clock.Advance(10 * time.Second)
		renew(t, f, clock, "behind", -time.Minute)
		renew(t, f, clock, "ahead", time.Minute)
		renew(t, f, clock, "dies", 0)
		for _, after := range []time.Duration{0, 3 * time.Second, 6500 * time.Millisecond} {
			clock.Advance(after)
			for _, n := range []string{"behind", "ahead", "dies"} {
				age, ok := heartbeatAge(t, f.c, n)
				if !ok {
					t.Fatalf("%s: no heartbeat age", n)
				}
				if age < 0 || age >= 10 {
					t.Errorf("%s, %s after a renewal: heartbeat age %g s, want within [0, 10)", n, after, age)
				}
			}
		}
		clock.Advance(-9500 * time.Millisecond)
	}

	// The kubelet of "dies" stops renewing; the others go on.
	for i := range 9 {
		clock.Advance(10 * time.Second)
		renew(t, f, clock, "behind", -time.Minute)
		renew(t, f, clock, "ahead", time.Minute)
		age, _ := heartbeatAge(t, f.c, "dies")
		if want := float64(10 * (i + 1)); age != want {
			t.Errorf("%d s after the last renewal: heartbeat age %g, want %g", 10*(i+1), age, want)
		}
		if age, _ := heartbeatAge(t, f.c, "behind"); age != 0 {
			t.Errorf("behind: heartbeat age %g right after a renewal, want 0", age)
		}
	}
}

func TestHeartbeatsRules(t *testing.T) {
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	tp := func(tm time.Time) *time.Time { return &tm }
	h := newHeartbeats()
	if _, ok := h.age("n", at(0)); ok {
		t.Fatal("age of a Lease never seen")
	}
	h.observe("n", nil, at(0))
	if _, ok := h.age("n", at(0)); ok {
		t.Fatal("age of a Lease never renewed")
	}
	// First sight: face value, never in the future.
	h.observe("n", tp(at(-30)), at(0))
	if age, _ := h.age("n", at(0)); age != 30 {
		t.Errorf("first sight of a renewal 30 s old: age %g", age)
	}
	// The same renewTime again is no renewal.
	h.observe("n", tp(at(-30)), at(5))
	if age, _ := h.age("n", at(5)); age != 35 {
		t.Errorf("no renewal: age %g, want 35", age)
	}
	// A renewTime set back (the kubelet's clock corrected) is a renewal.
	h.observe("n", tp(at(-600)), at(7))
	if age, _ := h.age("n", at(8)); age != 1 {
		t.Errorf("renewTime set back: age %g, want 1", age)
	}
	// A scrape on a clock behind the last observation is never negative.
	if age, _ := h.age("n", at(0)); age != 0 {
		t.Errorf("clock before the observation: age %g, want 0", age)
	}
	h.forget("n")
	if _, ok := h.age("n", at(8)); ok {
		t.Error("age of a deleted Lease")
	}
}
