package hold

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
)

func TestInstanceRefreshCancelledOnStopOnly(t *testing.T) {
	ctx := context.Background()
	// Slow replacements: the refresh stays InProgress through the test.
	srv, a := slowRefreshGroups(t, "nodes-blue", "nodes-green")
	id, err := a.StartInstanceRefresh("nodes-blue", awsfake.InstanceRefreshSpec{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.InstanceRefreshes("nodes-blue")[0].Status != "InProgress" {
		if time.Now().After(deadline) {
			t.Fatal("the refresh never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r, reg, logs := reporter(t, nil)
	tgt := &InstanceRefreshes{Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Groups: []string{"nodes-blue", "nodes-green"}}

	// WAIT: the refresh goes on, said once.
	for range 2 {
		if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.InstanceRefreshes("nodes-blue")[0].Status; st != "InProgress" {
		t.Fatalf("a WAIT left the refresh %s, want InProgress", st)
	}
	if n := strings.Count(logs.String(), "cannot be paused"); n != 1 {
		t.Errorf("the running refresh was reported %d times, want once:\n%s", n, logs)
	}
	if srv.Calls("CancelInstanceRefresh") != 0 {
		t.Error("CancelInstanceRefresh called on WAIT")
	}
	// STOP: cancelled, once.
	stop := holdDecision()
	stop.Verdict = gate.STOP
	for range 2 {
		if err := tgt.Apply(ctx, stop, r); err != nil {
			t.Fatal(err)
		}
	}
	got := a.InstanceRefreshes("nodes-blue")[0]
	if got.ID != id || got.Status != "Cancelling" && got.Status != "Cancelled" {
		t.Errorf("after STOP: %+v, want the refresh cancelling", got)
	}
	if n := srv.Calls("CancelInstanceRefresh"); n != 1 {
		t.Errorf("%d CancelInstanceRefresh calls, want 1 (nodes-green has no refresh)", n)
	}
	if v := gauge(t, reg, "upgradeguard_hold_active", "asg/nodes-blue"); v != 1 {
		t.Errorf("hold_active{asg/nodes-blue} %v after the cancel", v)
	}
	if v := gauge(t, reg, "upgradeguard_hold_transitions_total", "asg/nodes-blue"); v != 1 {
		t.Errorf("transitions of asg/nodes-blue %v", v)
	}
	// GO: nothing resumes by itself, and the hold says how to go on.
	if err := tgt.Apply(ctx, releaseDecision(), r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "start a new one") {
		t.Errorf("GO after a cancel does not say to start a new refresh:\n%s", logs)
	}
	if v := gauge(t, reg, "upgradeguard_hold_active", "asg/nodes-blue"); v != 0 {
		t.Errorf("hold_active{asg/nodes-blue} %v after GO", v)
	}
	if n := len(a.InstanceRefreshes("nodes-blue")); n != 1 {
		t.Errorf("%d refreshes: the hold must not start one", n)
	}
}
