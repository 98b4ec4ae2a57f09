package workloads

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var (
	statefulSetLabels = []string{"namespace", "statefulset"}

	statefulSetSpecReplicasFamily = &metricstore.Family{Name: "upgradeguard_statefulset_spec_replicas",
		Help: "Replicas the StatefulSet wants (spec.replicas).",
		Type: metricstore.Gauge, LabelNames: statefulSetLabels}
	statefulSetAvailableFamily = &metricstore.Family{Name: "upgradeguard_statefulset_status_replicas_available",
		Help: "Replicas of the StatefulSet available (ready for at least minReadySeconds), from its status.",
		Type: metricstore.Gauge, LabelNames: statefulSetLabels}
	statefulSetReadyFamily = &metricstore.Family{Name: "upgradeguard_statefulset_status_replicas_ready",
		Help: "Replicas of the StatefulSet whose pods are Ready, from its status.",
		Type: metricstore.Gauge, LabelNames: statefulSetLabels}
	statefulSetUpdatedFamily = &metricstore.Family{Name: "upgradeguard_statefulset_status_replicas_updated",
		Help: "Replicas of the StatefulSet at its update revision, from its status.",
		Type: metricstore.Gauge, LabelNames: statefulSetLabels}
	statefulSetMaxUnavailableFamily = &metricstore.Family{Name: "upgradeguard_statefulset_strategy_max_unavailable",
		Help: "Replicas the StatefulSet's update strategy lets be unavailable, as the statefulset controller resolves it: rollingUpdate maxUnavailable (default 1) of spec.replicas rounded down, at least 1; 0 for OnDelete.",
		Type: metricstore.Gauge, LabelNames: statefulSetLabels}
	statefulSetFamilies = []*metricstore.Family{
		statefulSetSpecReplicasFamily, statefulSetAvailableFamily, statefulSetReadyFamily, statefulSetUpdatedFamily, statefulSetMaxUnavailableFamily,
	}
)

// renderStatefulSet renders a StatefulSet's series.
func renderStatefulSet(b *metricstore.Builder, s *kube.StatefulSet) {
	b.Add(statefulSetSpecReplicasFamily, float64(s.Replicas), s.Namespace, s.Name)
	b.Add(statefulSetAvailableFamily, float64(s.AvailableReplicas), s.Namespace, s.Name)
	b.Add(statefulSetReadyFamily, float64(s.ReadyReplicas), s.Namespace, s.Name)
	b.Add(statefulSetUpdatedFamily, float64(s.UpdatedReplicas), s.Namespace, s.Name)
	if n, ok := statefulSetMaxUnavailable(s); ok {
		b.Add(statefulSetMaxUnavailableFamily, float64(n), s.Namespace, s.Name)
	}
}

// statefulSetMaxUnavailable follows getStatefulSetMaxUnavailable of
// k8s.io/kubernetes pkg/controller/statefulset/stateful_set_utils.go: the
// rollingUpdate maxUnavailable, 1 by default (and always, where the
// MaxUnavailableStatefulSet feature is off: the API server then drops the
// field), scaled to spec.replicas rounded down and at least 1. OnDelete
// replaces no pod by itself: 0. ok is false when a percentage does not parse.
func statefulSetMaxUnavailable(s *kube.StatefulSet) (n int32, ok bool) {
	if s.Strategy == appsv1.OnDeleteStatefulSetStrategyType {
		return 0, true
	}
	one := intstr.FromInt32(1)
	maxUnavailable := &one
	if s.MaxUnavailable != nil {
		maxUnavailable = s.MaxUnavailable
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, int(s.Replicas), false)
	if err != nil {
		return 0, false
	}
	return int32(max(v, 1)), true
}
