package cni

import "github.com/prometheus/client_golang/prometheus"

// Describe sends the descriptor of every metric the collector can emit,
// except its refresher's last-success timestamp (awsapi.Describe). The
// collector is unchecked (its series depend on the cluster and AWS), so this
// is how code that needs the names, such as the alert rules' metric check,
// gets them from the descriptors themselves.
func Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		subnetAvailableDesc, subnetUsableDesc, zoneAvailableDesc, subnetPrefixesDesc, zonePrefixesDesc,
		nodeCapacityDesc, nodePodIPsDesc, vpcCNINodesDesc, vpcCNISettingDesc,
	} {
		ch <- d
	}
}
