package roll

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// A group with a warm pool replaces a terminated node (or serves a surge)
// with a warm instance: the activity is "Launching a new EC2 instance from
// warm pool: i-...", then the group refills the pool ("into warm pool"),
// which may fail for want of capacity. The replacement is the instance
// that entered the group, whatever the wording; a failed refill is not a
// failed replacement. (Before, the roll took no instance
// from the first wording and timed out, and stopped at once at a failed
// refill as if the replacement had failed.)
func TestRunWarmPoolReplacement(t *testing.T) {
	for _, tc := range []struct {
		name          string
		surge, refill bool // refill: the pool's refills fail
		parallel      int  // --max-unavailable
	}{
		{"replace", false, false, 1},
		{"replace, refill fails", false, true, 1},
		{"surge", true, false, 1},
		{"surge, refill fails", true, true, 1},
		{"two surges at once", true, false, 2},
		{"two replacements at once, refill fails", false, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rollCluster(t, 2)
			old := c.groupNodes("nodes")
			if err := c.acct.PutWarmPool("nodes", awsfake.WarmPool{MinSize: 2}); err != nil {
				t.Fatal(err)
			}
			_, warm, _ := c.acct.WarmPoolOf("nodes")
			if len(warm) != 2 {
				t.Fatalf("warm pool: %d instances, want 2", len(warm))
			}
			if tc.refill {
				if err := c.acct.FailLaunches(awsfake.LaunchFault{Group: "nodes", Code: awsfake.InsufficientInstanceCapacity}); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			cfg := c.rollConfig(&script{}, &out)
			cfg.Surge = tc.surge
			cfg.MaxUnavailable = tc.parallel
			cfg.NodeTimeout = 3 * time.Second
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			// Each node was replaced by a warm instance's node.
			warmNodes := map[string]bool{}
			for _, n := range c.nodes() {
				for _, w := range warm {
					if strings.HasSuffix(n.Spec.ProviderID, "/"+w.ID) {
						warmNodes[n.Name] = true
					}
				}
			}
			for _, nr := range res.Nodes {
				if !warmNodes[nr.Replacement] {
					t.Errorf("node %s replaced by %q, want a warm instance's node (%v)", nr.Node, nr.Replacement, warmNodes)
				}
			}
			for _, name := range old {
				if strings.Contains(out.String(), name+": replaced by") == false {
					t.Errorf("node %s not replaced:\n%s", name, out.String())
				}
			}
			if !strings.Contains(out.String(), "from warm pool") {
				t.Errorf("the roll does not say the replacement came from the warm pool:\n%s", out.String())
			}
		})
	}
}

// The instance the roll claimed as a node's replacement is terminated by
// Auto Scaling (a failed health check, a spot interruption) before its
// node is Ready; the group launches another. The roll notices that the
// claimed instance left the group, says so, and follows the next launch.
// (Before, it waited on the first instance for the whole
// node timeout and stopped with the old node gone.)
func TestRunClaimedReplacementReplaced(t *testing.T) {
	for _, surge := range []bool{false, true} {
		t.Run(fmt.Sprintf("surge=%v", surge), func(t *testing.T) {
			c := rollCluster(t, 2)
			old := map[string]bool{}
			g, _ := c.acct.ASG("nodes")
			for _, id := range g.Instances {
				old[id] = true
			}
			var mu sync.Mutex
			var doomed string
			c.acct.OnLaunch(func(inst awsfake.Instance) {
				if inst.ASG == "" {
					return
				}
				mu.Lock()
				first := doomed == "" && inst.ASG == "nodes" && !old[inst.ID]
				if first {
					doomed = inst.ID
				}
				mu.Unlock()
				name := nodeName(inst)
				c.addNode(name, inst.ASG, inst.AZ, fmt.Sprintf("aws:///%s/%s", inst.AZ, inst.ID), "v1.37.2")
				if !first {
					return
				}
				// The first replacement's kubelet never gets Ready; Auto
				// Scaling's health check replaces the instance a little
				// later, once the roll has claimed it.
				n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
				if err == nil {
					n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
					_, _ = c.client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{})
				}
				go func() {
					time.Sleep(300 * time.Millisecond)
					if err := c.acct.ReplaceUnhealthy(inst.ID); err != nil {
						t.Errorf("replacing %s: %v", inst.ID, err)
					}
				}()
			})
			var out bytes.Buffer
			cfg := c.rollConfig(&script{}, &out)
			cfg.Surge = surge
			cfg.NodeTimeout = 3 * time.Second
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if doomed == "" {
				t.Fatal("no replacement was launched")
			}
			if !strings.Contains(out.String(), "instance "+doomed+" left group nodes") {
				t.Errorf("the roll does not say the claimed instance %s left the group:\n%s", doomed, out.String())
			}
			left := 0
			for _, nr := range res.Nodes {
				if nr.Replacement == "" || strings.Contains(nr.Replacement, doomed) {
					t.Errorf("node %s: replacement %q", nr.Node, nr.Replacement)
				}
				if len(nr.LeftGroup) > 0 {
					left++
					if nr.LeftGroup[0] != doomed {
						t.Errorf("node %s: instances that left the group %v, want [%s]", nr.Node, nr.LeftGroup, doomed)
					}
				}
			}
			if left != 1 {
				t.Errorf("%d node results record an instance that left the group, want 1", left)
			}
			t.Logf("roll output:\n%s", out.String())
		})
	}
}

// A warm pool prepared before the group's launch template changed hands
// the roll instances of the old version: AWS does not update warm
// instances. The roll says so for each replacement, naming both versions.
func TestRunWarmPoolOutdated(t *testing.T) {
	c := rollCluster(t, 2)
	if err := c.acct.PutWarmPool("nodes", awsfake.WarmPool{MinSize: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.acct.AddLaunchTemplateVersion("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large", ImageID: "ami-new"}, true); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg := c.rollConfig(&script{}, &out)
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), ":1, the group launches "); n != 2 ||
		!strings.Contains(out.String(), "it came from the group's warm pool, prepared before the launch template changed") {
		t.Errorf("want a warning for each of the 2 replacements from the outdated warm pool:\n%s", out.String())
	}
}

// The downtime report's Markdown names the instances that left the group.
func TestReportLeftGroup(t *testing.T) {
	var b bytes.Buffer
	r := &DowntimeReport{Nodes: []NodeTimings{{Node: "ip-10-1-0-4", Replacement: "ip-10-1-0-9", LeftGroup: []string{"i-0abc"}}}}
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Node ip-10-1-0-4: instance(s) i-0abc, claimed as its replacement, left the group before their node was Ready") {
		t.Errorf("markdown:\n%s", b.String())
	}
}
