package awsfake

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

func describeRefreshes(t *testing.T, c *autoscaling.Client, group string) []astypes.InstanceRefresh {
	t.Helper()
	var out []astypes.InstanceRefresh
	p := autoscaling.NewDescribeInstanceRefreshesPaginator(c, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String(group), MaxRecords: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.InstanceRefreshes...)
	}
	return out
}

func waitRefresh(t *testing.T, c *autoscaling.Client, group, id string, want astypes.InstanceRefreshStatus) astypes.InstanceRefresh {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, r := range describeRefreshes(t, c, group) {
			if aws.ToString(r.InstanceRefreshId) == id && r.Status == want {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("refresh %s of %s never reached %s: %+v", id, group, want, describeRefreshes(t, c, group))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInstanceRefreshReplacesEveryInstance(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	a.SetTiming(Timing{LaunchDelay: 20 * time.Millisecond})
	a.SetInstanceRefreshStep(20 * time.Millisecond)
	cl := buildCluster(t, a)
	before := map[string]bool{}
	for _, id := range cl.asg.Instances {
		before[id] = true
	}
	out, err := c.asg.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: aws.String("demo-nodes")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.InstanceRefreshId)
	// A second refresh while one is active is refused.
	_, err = c.asg.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: aws.String("demo-nodes")})
	if apiCode(err) != "InstanceRefreshInProgress" {
		t.Errorf("second start: %v, want InstanceRefreshInProgress", err)
	}
	r := waitRefresh(t, c.asg, "demo-nodes", id, astypes.InstanceRefreshStatusSuccessful)
	if aws.ToInt32(r.PercentageComplete) != 100 || aws.ToInt32(r.InstancesToUpdate) != 0 || r.EndTime == nil {
		t.Errorf("finished refresh: %d%%, %d to update, end %v", aws.ToInt32(r.PercentageComplete), aws.ToInt32(r.InstancesToUpdate), r.EndTime)
	}
	if p := r.Preferences; p == nil || aws.ToInt32(p.MinHealthyPercentage) != 90 {
		t.Errorf("preferences %+v, want the default MinHealthyPercentage 90", p)
	}
	g, _ := a.ASG("demo-nodes")
	live := 0
	for _, iid := range g.Instances {
		inst, _ := a.Instance(iid)
		if inst.State == "running" {
			live++
			if before[iid] {
				t.Errorf("instance %s survived the refresh", iid)
			}
		}
	}
	if live != 3 {
		t.Errorf("%d running instances after the refresh, want 3", live)
	}
	// Nothing active: a cancel is refused.
	_, err = c.asg.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: aws.String("demo-nodes")})
	if apiCode(err) != "ActiveInstanceRefreshNotFound" {
		t.Errorf("cancel after success: %v, want ActiveInstanceRefreshNotFound", err)
	}
}

func TestInstanceRefreshCancel(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	// Slow launches: the cancel comes while the first batch is replaced.
	a.SetTiming(Timing{LaunchDelay: 300 * time.Millisecond})
	a.SetInstanceRefreshStep(50 * time.Millisecond)
	cl := buildCluster(t, a)
	id, err := a.StartInstanceRefresh("demo-nodes", InstanceRefreshSpec{})
	if err != nil {
		t.Fatal(err)
	}
	waitRefresh(t, c.asg, "demo-nodes", id, astypes.InstanceRefreshStatusInProgress)
	out, err := c.asg.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: aws.String("demo-nodes")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.InstanceRefreshId) != id {
		t.Errorf("cancelled %s, want %s", aws.ToString(out.InstanceRefreshId), id)
	}
	rs := describeRefreshes(t, c.asg, "demo-nodes")
	if len(rs) != 1 || rs[0].Status != astypes.InstanceRefreshStatusCancelling {
		t.Fatalf("right after the cancel: %+v, want one Cancelling refresh", rs)
	}
	// Cancelling is not cancellable again, and blocks a new start.
	if _, err := a.CancelInstanceRefresh("demo-nodes"); apiCode(err) != "ActiveInstanceRefreshNotFound" {
		t.Errorf("second cancel: %v, want ActiveInstanceRefreshNotFound", err)
	}
	if _, err := a.StartInstanceRefresh("demo-nodes", InstanceRefreshSpec{}); apiCode(err) != "InstanceRefreshInProgress" {
		t.Errorf("start while cancelling: %v, want InstanceRefreshInProgress", err)
	}
	r := waitRefresh(t, c.asg, "demo-nodes", id, astypes.InstanceRefreshStatusCancelled)
	// One batch (one instance of three at 90% healthy) was replaced; the
	// other two were left alone.
	if got := aws.ToInt32(r.InstancesToUpdate); got != 2 {
		t.Errorf("cancelled refresh has %d instances to update, want 2", got)
	}
	kept := 0
	for _, iid := range cl.asg.Instances {
		if inst, _ := a.Instance(iid); inst.State == "running" {
			kept++
		}
	}
	if kept != 2 {
		t.Errorf("%d original instances still running after the cancel, want 2", kept)
	}
	time.Sleep(400 * time.Millisecond)
	if kept2 := len(describeRefreshes(t, c.asg, "demo-nodes")); kept2 != 1 {
		t.Errorf("%d refreshes", kept2)
	}
	// A cancelled refresh does not resume; a new one starts over and is
	// listed first.
	id2, err := a.StartInstanceRefresh("demo-nodes", InstanceRefreshSpec{MinHealthyPercentage: new(0)})
	if err != nil {
		t.Fatal(err)
	}
	rs = describeRefreshes(t, c.asg, "demo-nodes")
	if len(rs) != 2 || aws.ToString(rs[0].InstanceRefreshId) != id2 || aws.ToString(rs[1].InstanceRefreshId) != id {
		t.Errorf("refreshes listed %+v, want the new one first", rs)
	}
	// Pending is cancelled at once.
	if _, err := a.CancelInstanceRefresh("demo-nodes"); err != nil {
		t.Fatal(err)
	}
	if got := a.InstanceRefreshes("demo-nodes")[0].Status; got != "Cancelled" {
		t.Errorf("a Pending refresh cancelled: %s, want Cancelled", got)
	}
	if _, err := a.CancelInstanceRefresh("nope"); apiCode(err) != "ValidationError" {
		t.Errorf("cancel of an unknown group: %v", err)
	}
}
