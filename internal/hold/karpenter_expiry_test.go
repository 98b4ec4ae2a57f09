package hold

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func nodeClaim(name, pool, expireAfter string, created time.Time, deleting bool) *unstructured.Unstructured {
	nc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
		"metadata": map[string]any{"name": name, "labels": map[string]any{LabelNodePool: pool}},
		"spec":     map[string]any{},
	}}
	if expireAfter != "" {
		_ = unstructured.SetNestedField(nc.Object, expireAfter, "spec", "expireAfter")
	}
	nc.SetCreationTimestamp(metav1.NewTime(created))
	if deleting {
		nc.SetDeletionTimestamp(&metav1.Time{Time: created.Add(time.Minute)})
		nc.SetFinalizers([]string{"karpenter.sh/termination"})
	}
	return nc
}

// poolGauge returns the value of a series with label nodepool=pool, or -1
// when there is none.
func poolGauge(t *testing.T, reg *prometheus.Registry, name, pool string) float64 {
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
				if l.GetName() == "nodepool" && l.GetValue() == pool {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestNodePoolExpiryIsReportedNotHeld(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	general := nodePool("general", map[string]string{"team": "web"}, `[{"nodes":"10%"}]`)
	_ = unstructured.SetNestedField(general.Object, "720h", "spec", "template", "spec", "expireAfter")
	_ = unstructured.SetNestedField(general.Object, "48h", "spec", "template", "spec", "terminationGracePeriod")
	never := nodePool("never", map[string]string{"team": "web"}, "") // expireAfter: Never
	bare := nodePool("bare", map[string]string{"team": "web"}, "")
	unstructured.RemoveNestedField(bare.Object, "spec", "template") // read as the CRD's default, 720h
	dyn := newDynamic(general, never, bare,
		// general: one expires in 30m, one was due 5m ago (not deleted
		// yet), one in 29 days, one has its own Never, one is being deleted.
		nodeClaim("general-a", "general", "720h", now.Add(-720*time.Hour+30*time.Minute), false),
		nodeClaim("general-b", "general", "720h", now.Add(-720*time.Hour-5*time.Minute), false),
		nodeClaim("general-c", "general", "720h", now.Add(-24*time.Hour), false),
		nodeClaim("general-d", "general", "Never", now.Add(-1000*time.Hour), false),
		nodeClaim("general-e", "general", "720h", now.Add(-800*time.Hour), true),
		nodeClaim("never-a", "never", "Never", now.Add(-1000*time.Hour), false),
		nodeClaim("other-a", "other", "1h", now.Add(-2*time.Hour), false),
	)
	kc := fake.NewClientset()
	r, reg, logs := reporter(t, kc)
	n := &NodePools{Client: dyn, Selector: "team=web", Now: func() time.Time { return now }}
	for range 2 {
		if err := n.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
	}

	for name, want := range map[string]float64{
		"upgradeguard_hold_nodepool_expire_after_seconds":             720 * 3600,
		"upgradeguard_hold_nodepool_termination_grace_period_seconds": 48 * 3600,
		"upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour":    2,
		"upgradeguard_hold_nodepool_next_expiry_timestamp_seconds":    float64(now.Add(-5 * time.Minute).Unix()),
	} {
		if got := poolGauge(t, reg, name, "general"); got != want {
			t.Errorf("%s{nodepool=general} = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{
		"upgradeguard_hold_nodepool_expire_after_seconds":             720 * 3600,
		"upgradeguard_hold_nodepool_termination_grace_period_seconds": -1, // unset
		"upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour":    0,
		"upgradeguard_hold_nodepool_next_expiry_timestamp_seconds":    -1, // no NodeClaims
	} {
		if got := poolGauge(t, reg, name, "bare"); got != want {
			t.Errorf("%s{nodepool=bare} = %v, want %v", name, got, want)
		}
	}
	if got := poolGauge(t, reg, "upgradeguard_hold_nodepool_expire_after_seconds", "never"); got != -1 {
		t.Errorf("a pool with expireAfter Never has an expiry series: %v", got)
	}

	// One Warning per pool that expires, over two evaluations; none for
	// the pool with Never.
	notHeld := map[string]string{}
	for _, e := range events(t, kc) {
		if e.Reason == ReasonNotHeld {
			if _, dup := notHeld[e.InvolvedObject.Name]; dup || e.Type != "Warning" || e.InvolvedObject.Kind != "NodePool" {
				t.Errorf("Event %s %s on %s/%s: want one Warning per NodePool", e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name)
			}
			notHeld[e.InvolvedObject.Name] = e.Message
		}
	}
	if len(notHeld) != 2 || notHeld["never"] != "" {
		t.Errorf("%s Events on %v, want general and bare", ReasonNotHeld, notHeld)
	}
	for _, want := range []string{"expiry is not held", "720h", "2 of its 4 NodeClaims expire within the next 1h0m0s", "the first at 2026-12-08T09:55:00Z", "terminationGracePeriod (48h0m0s)"} {
		if !strings.Contains(notHeld["general"], want) {
			t.Errorf("general's Event %q lacks %q", notHeld["general"], want)
		}
	}
	if !strings.Contains(notHeld["bare"], "CRD's default") || !strings.Contains(notHeld["bare"], "indefinitely") {
		t.Errorf("bare's Event: %q", notHeld["bare"])
	}
	if c := strings.Count(logs.String(), `msg="not held"`); c != 2 {
		t.Errorf("%d not-held log records, want 2:\n%s", c, logs)
	}
	if !strings.Contains(logs.String(), "expiring_next_hour=2") {
		t.Errorf("the log record lacks the count:\n%s", logs)
	}

	// The hold ends: the series go. The next hold says it again.
	if err := n.Apply(ctx, releaseDecision(), r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"upgradeguard_hold_nodepool_expire_after_seconds", "upgradeguard_hold_nodepool_termination_grace_period_seconds",
		"upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour", "upgradeguard_hold_nodepool_next_expiry_timestamp_seconds"} {
		if got := poolGauge(t, reg, name, "general"); got != -1 {
			t.Errorf("after the release %s{nodepool=general} = %v, want no series", name, got)
		}
	}
	now = now.Add(time.Hour)
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, e := range events(t, kc) {
		if e.Reason == ReasonNotHeld && e.InvolvedObject.Name == "general" {
			count++
		}
	}
	if count != 2 {
		t.Errorf("%d %s Events on general over two holds, want 2", count, ReasonNotHeld)
	}
}

func TestNodePoolExpiryClaimsUnreadable(t *testing.T) {
	// An older RBAC without nodeclaims: the pause stands, the pool still
	// reports its expireAfter, the error says what is missing.
	ctx := context.Background()
	dyn := newDynamic(nodePool("general", nil, `[{"nodes":"1"}]`))
	np := getPool(t, dyn, "general")
	_ = unstructured.SetNestedField(np.Object, "24h", "spec", "template", "spec", "expireAfter")
	if _, err := dyn.Resource(NodePoolResource).Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn.PrependReactor("list", "nodeclaims", forbidden)
	r, reg, _ := reporter(t, nil)
	n := &NodePools{Client: dyn, Names: []string{"general"}}
	err := n.Apply(ctx, holdDecision(), r)
	if err == nil || !strings.Contains(err.Error(), "listing NodeClaims") {
		t.Errorf("err %v, want the NodeClaims list named", err)
	}
	if got := budgetsJSON(t, getPool(t, dyn, "general")); got != `[{"nodes":"0"}]` {
		t.Errorf("not paused: %s", got)
	}
	if got := poolGauge(t, reg, "upgradeguard_hold_nodepool_expire_after_seconds", "general"); got != 24*3600 {
		t.Errorf("expire_after_seconds %v", got)
	}
	if got := poolGauge(t, reg, "upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour", "general"); got != -1 {
		t.Errorf("a count of NodeClaims that could not be read: %v", got)
	}

	// NodeClaims not served (404): none, and no error.
	dyn.PrependReactor("list", "nodeclaims", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), "")
	})
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Errorf("NodeClaims not served: %v", err)
	}
	if got := poolGauge(t, reg, "upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour", "general"); got != 0 {
		t.Errorf("NodeClaims not served: expiring %v, want 0", got)
	}
}

func forbidden(a k8stesting.Action) (bool, runtime.Object, error) {
	return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "", errors.New("RBAC: not granted"))
}
