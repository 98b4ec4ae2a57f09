package hold

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// Without the lifecycle hook a refresh is cancelled once a hold has lasted
// NoHookGrace, on WAIT already; with it, never (not even on STOP): the
// hook pauses it.
func TestInstanceRefreshCancelledAfterGraceOnlyWithoutHook(t *testing.T) {
	ctx := context.Background()
	srv, a := slowRefreshGroups(t, "hooked", "bare")
	for _, name := range []string{"hooked", "bare"} {
		if _, err := a.StartInstanceRefresh(name, awsfake.InstanceRefreshSpec{}); err != nil {
			t.Fatal(err)
		}
	}
	r, _, _ := reporter(t, nil)
	now := time.Now()
	tgt := &InstanceRefreshes{Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Groups: []string{"hooked", "bare"},
		Hooked: func(g string) bool { return g == "hooked" }, NoHookGrace: 2 * time.Minute, Now: func() time.Time { return now }}
	status := func(g string) string { return a.InstanceRefreshes(g)[0].Status }
	for _, step := range []time.Duration{0, time.Minute, 59 * time.Second} {
		now = now.Add(step)
		if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
	}
	if st := status("bare"); st == "Cancelling" || st == "Cancelled" {
		t.Fatalf("cancelled after 1m59s of hold: %s", st)
	}
	now = now.Add(time.Second)
	if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if st := status("bare"); st != "Cancelling" && st != "Cancelled" {
		t.Errorf("the refresh of the group without the hook after 2m of hold: %s, want cancelled", st)
	}
	stop := holdDecision()
	stop.Verdict = gate.STOP
	if err := tgt.Apply(ctx, stop, r); err != nil {
		t.Fatal(err)
	}
	if st := status("hooked"); st == "Cancelling" || st == "Cancelled" {
		t.Errorf("the refresh held at the hook was cancelled: %s", st)
	}
}
