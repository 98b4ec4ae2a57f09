package workloads

import (
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	statefulSetLabels = []string{"namespace", "statefulset"}

	statefulSetSpecReplicasDesc = prometheus.NewDesc("upgradeguard_statefulset_spec_replicas",
		"Replicas the StatefulSet wants (spec.replicas).",
		statefulSetLabels, nil)
	statefulSetAvailableDesc = prometheus.NewDesc("upgradeguard_statefulset_status_replicas_available",
		"Replicas of the StatefulSet available (ready for at least minReadySeconds), from its status.",
		statefulSetLabels, nil)
	statefulSetReadyDesc = prometheus.NewDesc("upgradeguard_statefulset_status_replicas_ready",
		"Replicas of the StatefulSet whose pods are Ready, from its status.",
		statefulSetLabels, nil)
	statefulSetUpdatedDesc = prometheus.NewDesc("upgradeguard_statefulset_status_replicas_updated",
		"Replicas of the StatefulSet at its update revision, from its status.",
		statefulSetLabels, nil)
	statefulSetMaxUnavailableDesc = prometheus.NewDesc("upgradeguard_statefulset_strategy_max_unavailable",
		"Replicas the StatefulSet's update strategy lets be unavailable, as the statefulset controller resolves it: rollingUpdate maxUnavailable (default 1) of spec.replicas rounded down, at least 1; 0 for OnDelete.",
		statefulSetLabels, nil)
)

func updateStatefulSets(objs []any, ch chan<- prometheus.Metric) {
	for _, obj := range objs {
		s, ok := obj.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		l := []string{s.Namespace, s.Name}
		gauge(ch, statefulSetSpecReplicasDesc, float64(statefulSetReplicas(s)), l...)
		gauge(ch, statefulSetAvailableDesc, float64(s.Status.AvailableReplicas), l...)
		gauge(ch, statefulSetReadyDesc, float64(s.Status.ReadyReplicas), l...)
		gauge(ch, statefulSetUpdatedDesc, float64(s.Status.UpdatedReplicas), l...)
		if n, ok := statefulSetMaxUnavailable(s); ok {
			gauge(ch, statefulSetMaxUnavailableDesc, float64(n), l...)
		}
	}
}

// statefulSetReplicas is spec.replicas; the API server defaults a missing one to 1.
func statefulSetReplicas(s *appsv1.StatefulSet) int32 {
	if s.Spec.Replicas == nil {
		return 1
	}
	return *s.Spec.Replicas
}

// statefulSetMaxUnavailable follows getStatefulSetMaxUnavailable of
// k8s.io/kubernetes pkg/controller/statefulset/stateful_set_utils.go: the
// rollingUpdate maxUnavailable, 1 by default (and always, where the
// MaxUnavailableStatefulSet feature is off: the API server then drops the
// field), scaled to spec.replicas rounded down and at least 1. OnDelete
// replaces no pod by itself: 0. ok is false when a percentage does not parse.
func statefulSetMaxUnavailable(s *appsv1.StatefulSet) (n int32, ok bool) {
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return 0, true
	}
	one := intstr.FromInt32(1)
	maxUnavailable := &one
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		maxUnavailable = ru.MaxUnavailable
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, int(statefulSetReplicas(s)), false)
	if err != nil {
		return 0, false
	}
	return int32(max(v, 1)), true
}
