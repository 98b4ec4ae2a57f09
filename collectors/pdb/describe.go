package pdb

import "github.com/prometheus/client_golang/prometheus"

// Describe sends the descriptor of every metric the collector can emit. The
// collector is unchecked (its series depend on the cluster), so this is how
// code that needs the names, such as the alert rules' metric check, gets
// them from the descriptors themselves.
func Describe(ch chan<- *prometheus.Desc) {
	for _, f := range pdbFamilies {
		ch <- f.Desc()
	}
	for _, f := range nodeFamilies {
		ch <- f.Desc()
	}
}
