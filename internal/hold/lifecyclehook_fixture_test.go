package hold

import (
	"testing"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// fakeGroups starts a fake AWS with one subnet of eu-west-1a and an
// m5.large launch template, and an Auto Scaling group per spec (its
// LaunchTemplate and Subnets filled in); the server stops with the test.
// The groups are returned in the order of specs.
func fakeGroups(t *testing.T, specs ...awsfake.ASGSpec) (*awsfake.Server, *awsfake.Account, []awsfake.ASG) {
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
	var gs []awsfake.ASG
	for _, spec := range specs {
		spec.LaunchTemplate, spec.Subnets = lt.ID, []string{sub.ID}
		g, err := a.AddASG(spec)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return srv, a, gs
}

// hookGroup is fakeGroups with one group "nodes" of minSize, maxSize and
// desired instances, for the lifecycle hook tests.
func hookGroup(t *testing.T, minSize, maxSize, desired int32) (*awsfake.Server, *awsfake.Account, awsfake.ASG) {
	t.Helper()
	srv, a, gs := fakeGroups(t, awsfake.ASGSpec{Name: "nodes", Min: minSize, Max: maxSize, Desired: desired})
	return srv, a, gs[0]
}

// slowRefreshGroups is fakeGroups with groups of 3 instances (1 to 4) and
// replacements that take a minute to launch, while the refresh steps every
// 10 ms: a refresh started on them stays InProgress through a test.
func slowRefreshGroups(t *testing.T, names ...string) (*awsfake.Server, *awsfake.Account) {
	t.Helper()
	var specs []awsfake.ASGSpec
	for _, n := range names {
		specs = append(specs, awsfake.ASGSpec{Name: n, Min: 1, Max: 4, Desired: 3})
	}
	srv, a, _ := fakeGroups(t, specs...)
	a.SetTiming(awsfake.Timing{LaunchDelay: time.Minute})
	a.SetInstanceRefreshStep(10 * time.Millisecond)
	return srv, a
}
