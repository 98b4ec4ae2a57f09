package awsquota

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// BenchmarkRefresh is one full refresh (limits, usage, surge, report) of an
// account of 5,000 instances and 20,000 ENIs; it reports the API requests
// a refresh costs.
func BenchmarkRefresh(b *testing.B) {
	srv, err := awsfake.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	a := srv.Account()
	types := []string{"m5.xlarge", "c5.4xlarge", "r5.large", "g4dn.xlarge", "inf1.xlarge", "p3.2xlarge"}
	var subnets []string
	for i, cidr := range []string{"10.10.0.0/16", "10.11.0.0/16"} {
		s, err := a.AddSubnet(awsfake.SubnetSpec{CIDR: cidr, AZ: []string{"us-east-1a", "us-east-1b"}[i]})
		if err != nil {
			b.Fatal(err)
		}
		subnets = append(subnets, s.ID)
	}
	for i := range 5000 {
		spec := awsfake.InstanceSpec{Type: types[i%len(types)], Subnet: subnets[i%2]}
		if i%10 == 0 {
			spec.Lifecycle = "spot"
		}
		if _, err := a.AddInstance(spec); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 15000 {
		if _, err := a.AddENI(awsfake.ENISpec{Subnet: subnets[i%2]}); err != nil {
			b.Fatal(err)
		}
	}
	e := &env{srv: srv, acct: a, logs: &syncBuffer{}}
	b.ResetTimer()
	for b.Loop() {
		e.reg = prometheus.NewRegistry()
		c := e.collector(b, nil)
		srv.ResetCalls()
		for _, r := range c.Refreshers() {
			if err := r.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		n := 0
		for _, v := range srv.CallCounts() {
			n += v
		}
		b.ReportMetric(float64(n), "requests/refresh")
	}
}
