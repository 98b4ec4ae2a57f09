package awsquota

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// Each cluster group's desired capacity and instances by
// lifecycle state, with the node group its tags name, so that the gate can
// find a group whose instance never became a node (3 in service, 2 nodes).
func TestGroupInstances(t *testing.T) {
	e := newEnv(t)
	a := e.acct
	sub := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.5.0.0/20", AZ: "us-east-1a"}))
	must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil))
	cluster := "kubernetes.io/cluster/demo"
	for _, g := range []awsfake.ASGSpec{
		// kops: the group is <instance group>.<cluster>.
		{Name: "nodes-a.demo.example.com", Desired: 3, Tags: map[string]string{cluster: "owned", TagKopsInstanceGroup: "nodes-a"}},
		// An EKS managed node group's group.
		{Name: "eks-ng-1-5ec9a0b2", Desired: 1, Tags: map[string]string{cluster: "owned", TagEKSNodegroup: "ng-1"}},
		// Named by --collector.awsquota.asg, no node group tag.
		{Name: "named", Desired: 1},
		// Another cluster's.
		{Name: "other", Desired: 1, Tags: map[string]string{"kubernetes.io/cluster/other": "owned", TagKopsInstanceGroup: "nodes"}},
	} {
		g.LaunchTemplate, g.Max, g.Subnets = "nodes", 10, []string{sub.ID}
		must[awsfake.ASG](t)(a.AddASG(g))
	}
	// One instance of ng-1 still pending; one of named on its way out.
	ng1, _ := a.ASG("eks-ng-1-5ec9a0b2")
	named, _ := a.ASG("named")
	if err := a.SetInstanceState(ng1.Instances[0], "pending"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetInstanceState(named.Instances[0], "shutting-down"); err != nil {
		t.Fatal(err)
	}

	c := e.collector(t, func(o *Options) { o.ClusterName, o.ASGNames = "demo", []string{"named"} })
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}

	var want strings.Builder
	want.WriteString(`# HELP upgradeguard_aws_asg_desired_capacity Desired capacity of an Auto Scaling group of the cluster; nodegroup is its kops.k8s.io/instancegroup or eks:nodegroup-name tag, empty without either.
# TYPE upgradeguard_aws_asg_desired_capacity gauge
upgradeguard_aws_asg_desired_capacity{account="` + a.ID + `",asg="eks-ng-1-5ec9a0b2",nodegroup="ng-1",region="us-east-1"} 1
upgradeguard_aws_asg_desired_capacity{account="` + a.ID + `",asg="named",nodegroup="",region="us-east-1"} 1
upgradeguard_aws_asg_desired_capacity{account="` + a.ID + `",asg="nodes-a.demo.example.com",nodegroup="nodes-a",region="us-east-1"} 3
# HELP upgradeguard_aws_asg_instance_info An instance of an Auto Scaling group of the cluster, always 1, with its zone and lifecycle state as Auto Scaling reports it (Pending, InService, Terminating, ...).
# TYPE upgradeguard_aws_asg_instance_info gauge
`)
	type inst struct{ asg, nodegroup, state string }
	insts := map[string]inst{}
	for _, g := range []struct{ name, nodegroup string }{{"nodes-a.demo.example.com", "nodes-a"}, {"eks-ng-1-5ec9a0b2", "ng-1"}, {"named", ""}} {
		grp, _ := a.ASG(g.name)
		for _, id := range grp.Instances {
			state := "InService"
			switch id {
			case ng1.Instances[0]:
				state = "Pending"
			case named.Instances[0]:
				state = "Terminating"
			}
			insts[id] = inst{g.name, g.nodegroup, state}
			want.WriteString(`upgradeguard_aws_asg_instance_info{account="` + a.ID + `",asg="` + g.name + `",instance_id="` + id +
				`",lifecycle_state="` + state + `",nodegroup="` + g.nodegroup + `",region="us-east-1",zone="us-east-1a"} 1` + "\n")
		}
	}
	if len(insts) != 5 {
		t.Fatalf("%d instances in the cluster's groups, want 5", len(insts))
	}
	want.WriteString(`# HELP upgradeguard_aws_asg_instance_launch_time_seconds Unix time an instance of an Auto Scaling group of the cluster was launched, from DescribeInstances; only for pending and running instances.
# TYPE upgradeguard_aws_asg_instance_launch_time_seconds gauge
`)
	for id, in := range insts {
		if in.state == "Terminating" {
			continue // shutting-down: DescribeInstances is asked for pending and running only
		}
		i, _ := a.Instance(id)
		want.WriteString(`upgradeguard_aws_asg_instance_launch_time_seconds{account="` + a.ID + `",asg="` + in.asg + `",instance_id="` + id +
			`",region="us-east-1"} ` + strconv.FormatFloat(float64(i.LaunchTime.UnixMilli())/1e3, 'f', -1, 64) + "\n")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors.AsPrometheus(c, nil))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()),
		"upgradeguard_aws_asg_desired_capacity", "upgradeguard_aws_asg_instance_info", "upgradeguard_aws_asg_instance_launch_time_seconds"); err != nil {
		t.Error(err)
	}

	// No request of their own: one DescribeAutoScalingGroups and one
	// DescribeInstances per usage refresh, as before.
	before := map[string]float64{}
	for _, op := range []string{"DescribeAutoScalingGroups", "DescribeInstances"} {
		before[op] = requests(t, e, op)
	}
	for _, r := range c.Refreshers() {
		if r.Collector == "awsquota_usage" {
			if err := r.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for op, n := range before {
		if d := requests(t, e, op) - n; d != 1 {
			t.Errorf("%s: %v requests in a usage refresh, want 1", op, d)
		}
	}
}

// requests returns the exporter's count of AWS requests of an operation.
func requests(t *testing.T, e *env, op string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "upgradeguard_aws_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == op {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
