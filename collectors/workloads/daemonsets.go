package workloads

import (
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	daemonSetLabels = []string{"namespace", "daemonset"}

	daemonSetDesiredDesc = prometheus.NewDesc("upgradeguard_daemonset_status_desired_number_scheduled",
		"Nodes that should run the DaemonSet's pod, from its status.",
		daemonSetLabels, nil)
	daemonSetAvailableDesc = prometheus.NewDesc("upgradeguard_daemonset_status_number_available",
		"Nodes running an available pod of the DaemonSet (ready for at least minReadySeconds), from its status.",
		daemonSetLabels, nil)
	daemonSetReadyDesc = prometheus.NewDesc("upgradeguard_daemonset_status_number_ready",
		"Nodes running a Ready pod of the DaemonSet, from its status.",
		daemonSetLabels, nil)
	daemonSetUpdatedDesc = prometheus.NewDesc("upgradeguard_daemonset_status_updated_number_scheduled",
		"Nodes running the DaemonSet's current pod template, from its status.",
		daemonSetLabels, nil)
	daemonSetMaxUnavailableDesc = prometheus.NewDesc("upgradeguard_daemonset_strategy_max_unavailable",
		"Pods the DaemonSet's update strategy lets be unavailable, as the daemonset controller resolves it: rollingUpdate maxUnavailable of the desired number rounded up (1 when it and maxSurge are both 0); 0 for OnDelete.",
		daemonSetLabels, nil)
)

func updateDaemonSets(objs []any, ch chan<- prometheus.Metric) {
	for _, obj := range objs {
		d, ok := obj.(*appsv1.DaemonSet)
		if !ok {
			continue
		}
		l := []string{d.Namespace, d.Name}
		gauge(ch, daemonSetDesiredDesc, float64(d.Status.DesiredNumberScheduled), l...)
		gauge(ch, daemonSetAvailableDesc, float64(d.Status.NumberAvailable), l...)
		gauge(ch, daemonSetReadyDesc, float64(d.Status.NumberReady), l...)
		gauge(ch, daemonSetUpdatedDesc, float64(d.Status.UpdatedNumberScheduled), l...)
		if n, ok := daemonSetMaxUnavailable(d); ok {
			gauge(ch, daemonSetMaxUnavailableDesc, float64(n), l...)
		}
	}
}

// daemonSetMaxUnavailable follows UnavailableCount and SurgeCount of
// k8s.io/kubernetes pkg/controller/daemon/util/daemonset_util.go, scaled to
// status.desiredNumberScheduled and rounded up, and the controller's rule in
// pkg/controller/daemon/update.go (updatedDesiredNodeCounts) that both at 0
// means maxUnavailable 1. OnDelete replaces no pod by itself: 0. ok is false
// when a percentage does not parse.
func daemonSetMaxUnavailable(d *appsv1.DaemonSet) (n int32, ok bool) {
	if d.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		return 0, true
	}
	desired := int(d.Status.DesiredNumberScheduled)
	var unavailable, surge int
	if ru := d.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		var err error
		if ru.MaxUnavailable != nil {
			if unavailable, err = intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true); err != nil {
				return 0, false
			}
		}
		if ru.MaxSurge != nil {
			if surge, err = intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true); err != nil {
				return 0, false
			}
		}
	}
	if desired > 0 && unavailable == 0 && surge == 0 {
		unavailable = 1
	}
	return int32(unavailable), true
}
