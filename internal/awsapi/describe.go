package awsapi

import "github.com/prometheus/client_golang/prometheus"

// Describe sends the descriptors of the metrics this package emits for the
// AWS collectors: the request counter of Requests and the refreshers'
// last-success timestamp.
func Describe(ch chan<- *prometheus.Desc) {
	ch <- lastSuccessDesc
	// A Requests registered on a throw-away registry: its counter is built
	// in one place, NewRequests.
	if r, err := NewRequests(prometheus.NewRegistry()); err == nil {
		r.total.Describe(ch)
	}
}
