package workloads

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var (
	daemonSetLabels = []string{"namespace", "daemonset"}

	daemonSetDesiredFamily = &metricstore.Family{Name: "upgradeguard_daemonset_status_desired_number_scheduled",
		Help: "Nodes that should run the DaemonSet's pod, from its status.",
		Type: metricstore.Gauge, LabelNames: daemonSetLabels}
	daemonSetAvailableFamily = &metricstore.Family{Name: "upgradeguard_daemonset_status_number_available",
		Help: "Nodes running an available pod of the DaemonSet (ready for at least minReadySeconds), from its status.",
		Type: metricstore.Gauge, LabelNames: daemonSetLabels}
	daemonSetReadyFamily = &metricstore.Family{Name: "upgradeguard_daemonset_status_number_ready",
		Help: "Nodes running a Ready pod of the DaemonSet, from its status.",
		Type: metricstore.Gauge, LabelNames: daemonSetLabels}
	daemonSetUpdatedFamily = &metricstore.Family{Name: "upgradeguard_daemonset_status_updated_number_scheduled",
		Help: "Nodes running the DaemonSet's current pod template, from its status.",
		Type: metricstore.Gauge, LabelNames: daemonSetLabels}
	daemonSetMaxUnavailableFamily = &metricstore.Family{Name: "upgradeguard_daemonset_strategy_max_unavailable",
		Help: "Pods the DaemonSet's update strategy lets be unavailable, as the daemonset controller resolves it: rollingUpdate maxUnavailable of the desired number rounded up (1 when it and maxSurge are both 0); 0 for OnDelete.",
		Type: metricstore.Gauge, LabelNames: daemonSetLabels}
	daemonSetFamilies = []*metricstore.Family{
		daemonSetDesiredFamily, daemonSetAvailableFamily, daemonSetReadyFamily, daemonSetUpdatedFamily, daemonSetMaxUnavailableFamily,
	}
)

// renderDaemonSet renders a DaemonSet's series.
func renderDaemonSet(b *metricstore.Builder, d *kube.DaemonSet) {
	b.Add(daemonSetDesiredFamily, float64(d.DesiredNumberScheduled), d.Namespace, d.Name)
	b.Add(daemonSetAvailableFamily, float64(d.NumberAvailable), d.Namespace, d.Name)
	b.Add(daemonSetReadyFamily, float64(d.NumberReady), d.Namespace, d.Name)
	b.Add(daemonSetUpdatedFamily, float64(d.UpdatedNumberScheduled), d.Namespace, d.Name)
	if n, ok := daemonSetMaxUnavailable(d); ok {
		b.Add(daemonSetMaxUnavailableFamily, float64(n), d.Namespace, d.Name)
	}
}

// daemonSetMaxUnavailable follows UnavailableCount and SurgeCount of
// k8s.io/kubernetes pkg/controller/daemon/util/daemonset_util.go, scaled to
// status.desiredNumberScheduled and rounded up, and the controller's rule in
// pkg/controller/daemon/update.go (updatedDesiredNodeCounts) that both at 0
// means maxUnavailable 1. OnDelete replaces no pod by itself: 0. ok is false
// when a percentage does not parse.
func daemonSetMaxUnavailable(d *kube.DaemonSet) (n int32, ok bool) {
	if d.Strategy != appsv1.RollingUpdateDaemonSetStrategyType {
		return 0, true
	}
	desired := int(d.DesiredNumberScheduled)
	var unavailable, surge int
	var err error
	if d.MaxUnavailable != nil {
		if unavailable, err = intstr.GetScaledValueFromIntOrPercent(d.MaxUnavailable, desired, true); err != nil {
			return 0, false
		}
	}
	if d.MaxSurge != nil {
		if surge, err = intstr.GetScaledValueFromIntOrPercent(d.MaxSurge, desired, true); err != nil {
			return 0, false
		}
	}
	if desired > 0 && unavailable == 0 && surge == 0 {
		unavailable = 1
	}
	return int32(unavailable), true
}
