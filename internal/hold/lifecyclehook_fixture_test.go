package hold

import (
	"testing"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// hookGroup starts a fake AWS with an Auto Scaling group "nodes" (min, max
// and desired instances of an m5.large launch template, in one subnet of
// eu-west-1a) for the lifecycle hook tests; the server stops with the test.
func hookGroup(t *testing.T, minSize, maxSize, desired int32) (*awsfake.Server, *awsfake.Account, awsfake.ASG) {
	t.Helper()
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	a := srv.Account()
	sub, err := a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: "eu-west-1a"})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := a.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: minSize, Max: maxSize, Desired: desired, Subnets: []string{sub.ID}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, a, g
}
