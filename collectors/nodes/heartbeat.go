package nodes

import (
	"sync"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// heartbeats measures the age of each node's Lease heartbeat on the
// exporter's own clock, as the node lifecycle controller does (k8s.io/kubernetes
// pkg/controller/nodelifecycle/node_lifecycle_controller.go, tryUpdateNodeHealth:
// when the Lease it observes carries a different spec.renewTime than the one it
// saved, it sets the node's probeTimestamp to its own now). The kubelet's
// clock is never compared with the exporter's: a kubelet whose clock runs
// behind or ahead but renews every 10 s has an age below 10 s, as the
// controller sees it, and the age is never negative.
//
// The controller takes a renewal to be a renewTime later than the saved one;
// here any change counts, so that a kubelet whose clock was set back is still
// seen alive (it also keeps posting node status, which the controller counts).
//
// First sight (the exporter's start, or a Lease created while it runs): the
// controller counts it as renewed now. That would report a kubelet that died
// before the exporter started as fresh for a whole lease duration, so here
// the first renewTime seen is taken at face value instead, no later than
// now: the age is now - renewTime on the exporter's clock, 0 when renewTime
// is in the future. A kubelet whose clock runs behind then shows its skew
// until its next renewal (10 s by default), after which the exporter's own
// clock measures it.
type heartbeats struct {
	mu     sync.Mutex
	byName map[string]heartbeat
}

// heartbeat is one Lease's last seen renewTime and the time on the
// exporter's clock it is taken to have happened.
type heartbeat struct {
	renew time.Time
	probe time.Time
}

func newHeartbeats() *heartbeats { return &heartbeats{byName: map[string]heartbeat{}} }

// observe records the renewTime of node name's Lease seen at now: a change
// is a renewal at now; the first renewTime of a Lease counts at face value,
// no later than now. A nil renewTime records nothing.
func (h *heartbeats) observe(name string, renew *time.Time, now time.Time) {
	if renew == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	last, seen := h.byName[name]
	switch {
	case !seen:
		h.byName[name] = heartbeat{renew: *renew, probe: minTime(*renew, now)}
	case !last.renew.Equal(*renew):
		h.byName[name] = heartbeat{renew: *renew, probe: now}
	}
}

// forget drops a deleted Lease.
func (h *heartbeats) forget(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.byName, name)
}

// get returns node name's last observed renewal, if any.
func (h *heartbeats) get(name string) (heartbeat, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hb, ok := h.byName[name]
	return hb, ok
}

// age returns the seconds since node name's last observed renewal, never
// negative, and whether one was observed.
func (h *heartbeats) age(name string, now time.Time) (float64, bool) {
	hb, ok := h.get(name)
	if !ok {
		return 0, false
	}
	return ageSeconds(hb.probe, now), true
}

// ageSeconds is the heartbeat age at now of a renewal taken to have
// happened at probe: never negative, should the clock go back.
func ageSeconds(probe, now time.Time) float64 {
	return max(0, now.Sub(probe).Seconds())
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// renewTime returns a Lease's spec.renewTime, nil when it has none.
func renewTime(l *kube.Lease) *time.Time {
	if l.RenewTime.IsZero() {
		return nil
	}
	t := l.RenewTime.Time
	return &t
}
