package awsfake

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const region = "us-east-1"

type clients struct {
	ec2   *ec2.Client
	asg   *autoscaling.Client
	elbv2 *elbv2.Client
	elb   *elb.Client
	sts   *sts.Client
	sq    *servicequotas.Client
}

func newClients(cfg aws.Config) clients {
	return clients{
		ec2:   ec2.NewFromConfig(cfg),
		asg:   autoscaling.NewFromConfig(cfg),
		elbv2: elbv2.NewFromConfig(cfg),
		elb:   elb.NewFromConfig(cfg),
		sts:   sts.NewFromConfig(cfg),
		sq:    servicequotas.NewFromConfig(cfg),
	}
}

// start starts a Server closed with the test, and clients for the default
// account.
func start(t *testing.T) (*Server, clients) {
	t.Helper()
	srv, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, newClients(srv.Config(region))
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// apiCode returns the smithy API error code of err, or "" when err is not
// an API error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

var ctx = context.Background()

// cluster builds the fixture most tests share: a VPC with three /24 subnets
// tagged for cluster "demo", a launch template of m5.large with a 20 GiB gp3
// volume, and an ASG of three nodes over the subnets.
type cluster struct {
	subnets []Subnet
	lt      LaunchTemplate
	asg     ASG
}

func buildCluster(t *testing.T, a *Account) cluster {
	t.Helper()
	var c cluster
	for i, az := range []string{"a", "b", "c"} {
		s, err := a.AddSubnet(SubnetSpec{
			CIDR: "10.0." + string(rune('1'+i)) + ".0/24", AZ: region + az,
			Tags: map[string]string{"kubernetes.io/cluster/demo": "shared", "Name": "demo-" + az},
		})
		if err != nil {
			t.Fatal(err)
		}
		c.subnets = append(c.subnets, s)
	}
	var err error
	c.lt, err = a.AddLaunchTemplate("demo-nodes", LaunchTemplateData{
		InstanceType: "m5.large",
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeType: "gp3", SizeGiB: 20, DeleteOnTermination: true}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.asg, err = a.AddASG(ASGSpec{
		Name: "demo-nodes", LaunchTemplate: "demo-nodes", Min: 1, Max: 6, Desired: 3,
		Subnets: []string{c.subnets[0].ID, c.subnets[1].ID, c.subnets[2].ID},
		Tags:    map[string]string{"kubernetes.io/cluster/demo": "owned"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
