package hold

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// eventSource is the component of the hold's Events.
const eventSource = "upgradeguard-hold"

// Event reasons, so `kubectl get events --field-selector
// reason=UpgradeHoldPaused` finds every pause.
const (
	ReasonPaused    = "UpgradeHoldPaused"
	ReasonResumed   = "UpgradeHoldResumed"
	ReasonCancelled = "UpgradeHoldCancelledRefresh"
	ReasonYielded   = "UpgradeHoldYielded"
	ReasonWaiting   = "UpgradeHoldCannotPause"
	// ReasonNotHeld: a paused target still goes on in part (a
	// karpenter.sh/v1 NodePool's expiry).
	ReasonNotHeld = "UpgradeHoldExpiryNotHeld"
)

// Reporter records what the targets do: a log record with the gate's
// reasons, a Kubernetes Event on the object changed (on the hold's Lease for
// what has no object of its own: the readiness endpoint, Auto Scaling
// groups), and the metrics.
type Reporter struct {
	client kubernetes.Interface
	logger *slog.Logger
	m      *metrics
	// anchor is where Events about objects outside Kubernetes go.
	anchor corev1.ObjectReference
}

// Paused records that target was paused.
func (r *Reporter) Paused(ctx context.Context, target string, obj *corev1.ObjectReference, d Decision, what string) {
	r.m.active.WithLabelValues(target).Set(1)
	r.m.transitions.WithLabelValues(target, "pause").Inc()
	r.logger.Info("paused", "target", target, "verdict", d.Verdict, "what", what, "reasons", d.Evaluation.Reasons())
	r.event(ctx, obj, corev1.EventTypeNormal, ReasonPaused, fmt.Sprintf("%s: %s (gate %s: %s)", target, what, d.Verdict, d.Reasons()))
}

// Resumed records that target was restored.
func (r *Reporter) Resumed(ctx context.Context, target string, obj *corev1.ObjectReference, d Decision, what string) {
	r.m.active.WithLabelValues(target).Set(0)
	r.m.transitions.WithLabelValues(target, "resume").Inc()
	r.logger.Info("resumed", "target", target, "verdict", d.Verdict, "what", what, "consecutive", d.Evaluation.Consecutive)
	r.event(ctx, obj, corev1.EventTypeNormal, ReasonResumed, fmt.Sprintf("%s: %s (gate GO after %d passing evaluations in a row)", target, what, d.Evaluation.Consecutive))
}

// Cancelled records an instance refresh cancelled on STOP.
func (r *Reporter) Cancelled(ctx context.Context, target string, d Decision, what string) {
	r.m.active.WithLabelValues(target).Set(1)
	r.m.transitions.WithLabelValues(target, "cancel").Inc()
	r.logger.Warn("cancelled", "target", target, "verdict", d.Verdict, "what", what, "reasons", d.Evaluation.Reasons())
	r.event(ctx, nil, corev1.EventTypeWarning, ReasonCancelled, fmt.Sprintf("%s: %s (gate %s: %s)", target, what, d.Verdict, d.Reasons()))
}

// Yielded records a target the hold leaves to a person who changed it.
func (r *Reporter) Yielded(ctx context.Context, target string, obj *corev1.ObjectReference, d Decision, what string) {
	r.m.active.WithLabelValues(target).Set(0)
	r.m.transitions.WithLabelValues(target, "yield").Inc()
	r.logger.Warn("left to the person who changed it", "target", target, "verdict", d.Verdict, "what", what)
	r.event(ctx, obj, corev1.EventTypeWarning, ReasonYielded, fmt.Sprintf("%s: %s", target, what))
}

// Notice records something about a target that the hold cannot change
// (once per occurrence; the caller decides when).
func (r *Reporter) Notice(ctx context.Context, target string, d Decision, what string) {
	r.logger.Warn("cannot pause", "target", target, "verdict", d.Verdict, "what", what, "reasons", d.Evaluation.Reasons())
	r.event(ctx, nil, corev1.EventTypeWarning, ReasonWaiting, fmt.Sprintf("%s: %s", target, what))
}

// NotHeld records what a paused target still does (once per hold; the
// caller decides when): a Warning log record with attrs and a Warning Event
// on obj.
func (r *Reporter) NotHeld(ctx context.Context, target string, obj *corev1.ObjectReference, d Decision, what string, attrs ...any) {
	r.logger.Warn("not held", append([]any{"target", target, "verdict", d.Verdict, "what", what}, attrs...)...)
	r.event(ctx, obj, corev1.EventTypeWarning, ReasonNotHeld, fmt.Sprintf("%s: %s", target, what))
}

// setExpiry sets a paused NodePool's expiry series (claimsKnown false: its
// NodeClaims could not be read, so their series go rather than lie).
func (r *Reporter) setExpiry(pool string, expireAfter, grace time.Duration, hasGrace bool, expiring int, next time.Time, claimsKnown bool) {
	r.m.expireAfter.WithLabelValues(pool).Set(expireAfter.Seconds())
	if hasGrace {
		r.m.terminationGrace.WithLabelValues(pool).Set(grace.Seconds())
	} else {
		r.m.terminationGrace.DeleteLabelValues(pool)
	}
	if claimsKnown {
		r.m.expiringClaims.WithLabelValues(pool).Set(float64(expiring))
	} else {
		r.m.expiringClaims.DeleteLabelValues(pool)
	}
	if claimsKnown && !next.IsZero() {
		r.m.nextExpiry.WithLabelValues(pool).Set(float64(next.Unix()))
	} else {
		r.m.nextExpiry.DeleteLabelValues(pool)
	}
}

// forgetExpiry drops a NodePool's expiry series (no longer paused).
func (r *Reporter) forgetExpiry(pool string) {
	for _, g := range []*prometheus.GaugeVec{r.m.expireAfter, r.m.terminationGrace, r.m.expiringClaims, r.m.nextExpiry} {
		g.DeleteLabelValues(pool)
	}
}

// Active sets a target's upgradeguard_hold_active without a transition
// (what the controller finds when it starts).
func (r *Reporter) Active(target string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	r.m.active.WithLabelValues(target).Set(v)
}

// Forget drops a target's series (a NodePool deleted or no longer selected).
func (r *Reporter) Forget(target string) { r.m.active.DeleteLabelValues(target) }

// event records a Kubernetes Event on obj (the anchor when nil). A failure
// to record it is logged, never fatal: the change itself is done.
func (r *Reporter) event(ctx context.Context, obj *corev1.ObjectReference, typ, reason, msg string) {
	if r.client == nil {
		return
	}
	ref := r.anchor
	if obj != nil {
		ref = *obj
	}
	if ref.Name == "" {
		return
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault // cluster-scoped objects' Events, as the kubelet's for nodes
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		// Named as client-go's recorder names Events: object name and time.
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: ns},
		InvolvedObject: ref,
		Reason:         reason,
		Message:        msg,
		Type:           typ,
		Source:         corev1.EventSource{Component: eventSource},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.client.CoreV1().Events(ns).Create(ectx, ev, metav1.CreateOptions{}); err != nil {
		r.logger.Warn("could not record an Event", "object", ref.Kind+"/"+ref.Name, "reason", reason, "err", err)
	}
}
