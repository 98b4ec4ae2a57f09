package awsquota

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/prometheus/client_golang/prometheus"
)

// The cluster's Auto Scaling groups and their instances, for comparing a
// group's instances with its Ready nodes (as kops validate does): taken from
// the DescribeAutoScalingGroups answer the surge demand already reads and the
// launch times of the DescribeInstances answer the vCPU usage already reads,
// so they cost no request of their own.

// Tags naming the node group of an Auto Scaling group, tried in this order:
// kops tags its groups with the instance group, EKS its managed node groups'
// groups with the node group. The node's label of the same value is what
// upgradeguard_node_info's nodegroup reads.
const (
	TagKopsInstanceGroup = "kops.k8s.io/instancegroup"
	TagEKSNodegroup      = "eks:nodegroup-name"
)

var (
	desiredCapacityDesc = prometheus.NewDesc("upgradeguard_aws_asg_desired_capacity",
		"Desired capacity of an Auto Scaling group of the cluster; nodegroup is its kops.k8s.io/instancegroup or eks:nodegroup-name tag, empty without either.",
		[]string{"account", "region", "asg", "nodegroup"}, nil)
	instanceInfoDesc = prometheus.NewDesc("upgradeguard_aws_asg_instance_info",
		"An instance of an Auto Scaling group of the cluster, always 1, with its zone and lifecycle state as Auto Scaling reports it (Pending, InService, Terminating, ...).",
		[]string{"account", "region", "asg", "nodegroup", "instance_id", "zone", "lifecycle_state"}, nil)
	instanceLaunchDesc = prometheus.NewDesc("upgradeguard_aws_asg_instance_launch_time_seconds",
		"Unix time an instance of an Auto Scaling group of the cluster was launched, from DescribeInstances; only for pending and running instances.",
		[]string{"account", "region", "asg", "instance_id"}, nil)
)

// asgGroup is one cluster group as the refresh saw it.
type asgGroup struct {
	name, nodegroup string
	desired         int32
	instances       []asgInstance
}

type asgInstance struct {
	id, zone, lifecycle string
}

// groupOf keeps what the metrics need of a DescribeAutoScalingGroups entry.
func groupOf(g astypes.AutoScalingGroup) asgGroup {
	out := asgGroup{name: aws.ToString(g.AutoScalingGroupName), desired: aws.ToInt32(g.DesiredCapacity)}
	tags := map[string]string{}
	for _, t := range g.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	out.nodegroup = tags[TagKopsInstanceGroup]
	if out.nodegroup == "" {
		out.nodegroup = tags[TagEKSNodegroup]
	}
	for _, i := range g.Instances {
		out.instances = append(out.instances, asgInstance{
			id: aws.ToString(i.InstanceId), zone: aws.ToString(i.AvailabilityZone), lifecycle: string(i.LifecycleState),
		})
	}
	return out
}

// sendGroups emits the groups, their instances and the instances' launch
// times where DescribeInstances gave one.
func sendGroups(ch chan<- prometheus.Metric, account, region string, groups []asgGroup, launched map[string]time.Time) {
	for _, g := range groups {
		ch <- prometheus.MustNewConstMetric(desiredCapacityDesc, prometheus.GaugeValue, float64(g.desired), account, region, g.name, g.nodegroup)
		for _, i := range g.instances {
			ch <- prometheus.MustNewConstMetric(instanceInfoDesc, prometheus.GaugeValue, 1, account, region, g.name, g.nodegroup, i.id, i.zone, i.lifecycle)
			if t, ok := launched[i.id]; ok && !t.IsZero() {
				ch <- prometheus.MustNewConstMetric(instanceLaunchDesc, prometheus.GaugeValue, float64(t.UnixMilli())/1e3, account, region, g.name, i.id)
			}
		}
	}
}
