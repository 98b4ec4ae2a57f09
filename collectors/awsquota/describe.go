package awsquota

import "github.com/prometheus/client_golang/prometheus"

// Describe sends the descriptor of every metric the collector can emit,
// except its refreshers' last-success timestamps (awsapi.Describe). The
// collector is unchecked (its series depend on the AWS account), so this is
// how code that needs the names, such as the alert rules' metric check, gets
// them from the descriptors themselves.
func Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		limitDesc, usageDesc, ratioDesc, surgeDesc, groupIPsDesc, groupPodIPsDesc, groupPrefixesDesc, unresolvedDesc,
		desiredCapacityDesc, instanceInfoDesc, instanceLaunchDesc,
	} {
		ch <- d
	}
}
