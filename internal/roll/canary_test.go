package roll

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// --canary 1 --canary-soak: one node is replaced, then the roll holds while
// the gate evaluates; a fault during the soak stops the roll with the
// gate's reasons, before any other node is touched. The soak's state
// survives: the next run holds it again in full, then replaces the rest.
func TestRunCanarySoakStopsOnFault(t *testing.T) {
	c := rollCluster(t, 3)
	old := c.groupNodes("nodes")
	var soaking, fault atomic.Bool
	g := &script{fn: func(node string, n int) gate.Status {
		if node == "" && soaking.Load() && fault.Load() {
			return gate.Fail
		}
		return gate.Pass
	}}
	var out syncBuffer
	cfg := c.rollConfig(g, nil)
	cfg.Out = &out
	cfg.GateWait.Interval = 20 * time.Millisecond
	cfg.Canary, cfg.CanarySoak = 1, 400*time.Millisecond
	// The fault fires once the soak runs.
	go func() {
		for !strings.Contains(out.String(), "canary soak: holding") {
			time.Sleep(5 * time.Millisecond)
		}
		soaking.Store(true)
		time.Sleep(100 * time.Millisecond)
		fault.Store(true)
	}()
	res, err := Run(context.Background(), cfg)
	var ce *CanaryError
	if !errors.As(err, &ce) || ce.ExitCode() != 3 || !strings.Contains(err.Error(), "TestAlert firing") {
		t.Fatalf("got %v, want a canary stop with the gate's reason\n%s", err, out.String())
	}
	if ce.After < 100*time.Millisecond || ce.After > 400*time.Millisecond {
		t.Errorf("stopped %s into the soak, want after the fault (100ms) and before its end", ce.After)
	}
	if len(res.Nodes) != 1 || res.Nodes[0].Node != old[0] {
		t.Errorf("replaced %+v, want the canary %s only", res.Nodes, old[0])
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("%d terminations, want the canary's", n)
	}
	for _, want := range []string{"1 canary", "canary phase: the 1 node(s) marked canary first, then a soak of 400ms", "canary phase: 1 node(s), then a soak of 400ms before the other 2",
		"canary soak: holding 400ms", "canary soak failed after"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, name := range old[1:] {
		if st, _ := readState(c.node(name)); st.Phase != PhaseMain || st.Soaked || st.Step != StepPending {
			t.Errorf("%s after the failed soak: %+v", name, st)
		}
	}

	// The fault is gone: the re-run holds the soak again, then goes on.
	fault.Store(false)
	out.Reset()
	res, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("re-run: %v\n%s", err, out.String())
	}
	if !res.Plan.Resumed || len(res.Nodes) != 2 || !strings.Contains(out.String(), "canary soak passed: ") {
		t.Errorf("re-run: resumed %v, %d nodes; output:\n%s", res.Plan.Resumed, len(res.Nodes), out.String())
	}
	if strings.Index(out.String(), "canary soak passed") > strings.Index(out.String(), "cordoned") {
		t.Errorf("a node was cordoned before the soak passed:\n%s", out.String())
	}
}

// syncBuffer is a buffer the test reads while the roll writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
