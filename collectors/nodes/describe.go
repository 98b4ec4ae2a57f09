package nodes

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

// families are the collector's metric families, in the order WriteMetrics
// writes them.
var families = []*metricstore.Family{
	readyFamily, unschedulableFamily, createdFamily, deletionFamily, taintFamily, infoFamily, transitionsFamily,
	heartbeatAgeFamily, leaseDurationFamily,
}

// Describe sends the descriptor of every metric the collector can emit. The
// collector is unchecked (its series depend on the cluster), so this is how
// code that needs the names, such as the alert rules' metric check, gets
// them from the descriptors themselves.
func Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.Desc()
	}
}
