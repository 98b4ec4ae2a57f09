package roll

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// eventSource is the component of the roll's Events.
const eventSource = "upgradeguard-roll"

// Event reasons, one per step, so `kubectl get events --field-selector
// involvedObject.kind=Node` reads as the roll's audit trail.
const (
	ReasonPlanned     = "RollPlanned"
	ReasonGate        = "RollGate"
	ReasonCordoned    = "RollCordoned"
	ReasonSurge       = "RollSurge"
	ReasonDraining    = "RollDraining"
	ReasonDrained     = "RollDrained"
	ReasonDrainFailed = "RollDrainFailed"
	ReasonTerminating = "RollTerminating"
	ReasonReplaced    = "RollReplaced"
	ReasonInterrupted = "RollInterrupted"
	ReasonStopped     = "RollStopped"
)

// reporter writes the progress lines, the progress bar on a terminal, the
// log records and the Kubernetes Events.
type reporter struct {
	out    io.Writer
	tty    bool
	client kubernetes.Interface
	logger *slog.Logger
	now    func() time.Time
	start  time.Time

	mu          sync.Mutex
	total, done int
	barShown    bool
}

// linef writes one progress line about a node ("" for the roll itself).
func (r *reporter) linef(node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.barShown {
		fmt.Fprint(r.out, "\r\033[K")
	}
	ts := r.now().Format("15:04:05")
	if node == "" {
		fmt.Fprintf(r.out, "%s  %s\n", ts, msg)
	} else {
		fmt.Fprintf(r.out, "%s  [%d/%d] %s: %s\n", ts, min(r.done+1, r.total), r.total, node, msg)
	}
	r.drawBar()
}

// drawBar draws the overall progress bar on a terminal (caller holds mu).
func (r *reporter) drawBar() {
	if !r.tty || r.total == 0 {
		return
	}
	const width = 30
	filled := width * r.done / r.total
	fmt.Fprintf(r.out, "[%s%s] %d/%d nodes replaced, %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		r.done, r.total, r.now().Sub(r.start).Round(time.Second))
	r.barShown = true
}

func (r *reporter) setTotal(n int) {
	r.mu.Lock()
	r.total = n
	r.mu.Unlock()
}

func (r *reporter) nodeDone() {
	r.mu.Lock()
	r.done++
	r.mu.Unlock()
}

// finish ends the bar's line.
func (r *reporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.barShown {
		fmt.Fprint(r.out, "\r\033[K")
		r.barShown = false
	}
}

// event records a Kubernetes Event on the node. A failure to record it is
// logged, not fatal: the roll's own output has the same facts.
func (r *reporter) event(ctx context.Context, n *corev1.Node, warning bool, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 1000 {
		msg = msg[:997] + "..."
	}
	typ := corev1.EventTypeNormal
	level := slog.LevelInfo
	if warning {
		typ, level = corev1.EventTypeWarning, slog.LevelWarn
	}
	r.logger.Log(ctx, level, msg, "node", n.Name, "reason", reason)
	if r.client == nil {
		return
	}
	now := metav1.NewTime(r.now())
	ev := &corev1.Event{
		// Named as client-go's recorder names Events: object name and time.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", n.Name, now.UnixNano()), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID,
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: eventSource},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "upgradeguard.io/roll", ReportingInstance: eventSource,
	}
	// Recorded even when the roll is being interrupted: that is when the
	// audit trail matters most.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.client.CoreV1().Events(metav1.NamespaceDefault).Create(ectx, ev, metav1.CreateOptions{}); err != nil {
		r.logger.Warn("could not record an Event on the node", "node", n.Name, "reason", reason, "err", err)
	}
}

func seconds(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
