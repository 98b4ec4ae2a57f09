package roll

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A node whose kubelet is dead: its evicted pods stay Terminating for ever.
// The drain counts them as gone once their deletion deadline is
// UnreachableGrace past, and only on an unreachable node; on a node whose
// kubelet answers it keeps waiting.
func TestDrainCountsPodsOnUnreachableNodeGone(t *testing.T) {
	for _, tc := range []struct {
		ready   corev1.ConditionStatus
		gone    bool
		comment string
	}{
		{corev1.ConditionUnknown, true, "kubelet unreachable"},
		{corev1.ConditionFalse, false, "kubelet reports NotReady: it still finishes deletions"},
	} {
		c := newCluster(t)
		c.addNode("dead", "g", "a", "", "v1.37.2")
		c.addNode("other", "g", "a", "", "v1.37.2")
		c.setReady("dead", tc.ready)
		c.stuck["dead"] = true
		c.addPod(pod{name: "web-1", node: "dead", owner: "web"})
		c.addPod(pod{name: "web-2", node: "dead", owner: "web"})
		o := fastDrain()
		o.Timeout = 3 * time.Second
		o.UnreachableGrace = 300 * time.Millisecond
		var gone []string
		d := &drainer{client: c.client, o: o, onGone: func(p string, _ time.Duration) { gone = append(gone, p) }}
		began := time.Now()
		n, err := d.drain(context.Background(), "dead")
		took := time.Since(began)
		if tc.gone {
			if err != nil || n != 2 || len(gone) != 2 {
				t.Errorf("%s: %d evicted, gone %v, %v; want both evicted and counted gone", tc.comment, n, gone, err)
			}
			if took > 2*time.Second {
				t.Errorf("%s: the drain took %s, want about the grace (300ms)", tc.comment, took)
			}
			t.Logf("%s: drain done in %s (grace 300ms)", tc.comment, took.Round(time.Millisecond))
			continue
		}
		var derr *DrainError
		if !errors.As(err, &derr) || !strings.Contains(err.Error(), "evicted, still terminating") || len(gone) != 0 {
			t.Errorf("%s: %v, gone %v; want the drain to wait for the kubelet until its timeout", tc.comment, err, gone)
		}
	}
}

// --unhealthy-first: the dead node goes first whatever the order.
func TestPlanUnhealthyFirst(t *testing.T) {
	c := newCluster(t)
	c.addGroup("nodes", 3, nil)
	names := c.groupNodes("nodes")
	dead := names[2]
	c.setReady(dead, corev1.ConditionUnknown)
	for _, tc := range []struct {
		first bool
		want  string
	}{{false, names[0]}, {true, dead}} {
		p, err := makePlan(context.Background(), c.client, c.aws, Selection{NodeGroup: "nodes", Order: OrderName, UnhealthyFirst: tc.first}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Nodes[0].Name(); got != tc.want {
			t.Errorf("unhealthy first %v: first node %s, want %s", tc.first, got, tc.want)
		}
		var out bytes.Buffer
		if err := p.Write(&out, time.Now()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "READY") || !strings.Contains(out.String(), "Unknown") {
			t.Errorf("the plan does not show the node's Ready status:\n%s", out.String())
		}
	}
}

// A roll of a group with a dead node replaces it: its pods, evicted, stay
// Terminating, the drain lets them go after the grace, the instance is
// terminated and its replacement comes.
func TestRunReplacesDeadNode(t *testing.T) {
	c := rollCluster(t, 3)
	names := c.groupNodes("nodes")
	dead := names[1]
	c.setReady(dead, corev1.ConditionUnknown)
	c.stuck[dead] = true
	var out bytes.Buffer
	cfg := c.rollConfig(&script{}, &out)
	cfg.Selection.UnhealthyFirst = true
	cfg.Drain.UnreachableGrace = 200 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Nodes[0].Node != dead || len(res.Nodes) != 3 {
		t.Errorf("replaced %+v, want the dead node %s first and all 3", res.Nodes, dead)
	}
	if !strings.Contains(out.String(), "counted as gone: evicted, its deletion deadline passed") {
		t.Errorf("the roll does not say it let the stuck pod go:\n%s", out.String())
	}
	for _, n := range c.groupNodes("nodes") {
		if n == dead {
			t.Errorf("dead node %s still there", dead)
		}
	}
}
