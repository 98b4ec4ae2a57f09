package workloads

import (
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	deploymentLabels = []string{"namespace", "deployment"}

	deploymentSpecReplicasDesc = prometheus.NewDesc("upgradeguard_deployment_spec_replicas",
		"Replicas the Deployment wants (spec.replicas).",
		deploymentLabels, nil)
	deploymentAvailableDesc = prometheus.NewDesc("upgradeguard_deployment_status_replicas_available",
		"Replicas of the Deployment available (ready for at least minReadySeconds), from its status.",
		deploymentLabels, nil)
	deploymentReadyDesc = prometheus.NewDesc("upgradeguard_deployment_status_replicas_ready",
		"Replicas of the Deployment whose pods are Ready, from its status.",
		deploymentLabels, nil)
	deploymentUpdatedDesc = prometheus.NewDesc("upgradeguard_deployment_status_replicas_updated",
		"Replicas of the Deployment running its current pod template, from its status.",
		deploymentLabels, nil)
	deploymentMaxUnavailableDesc = prometheus.NewDesc("upgradeguard_deployment_strategy_max_unavailable",
		"Replicas the Deployment's strategy lets be unavailable, as the deployment controller resolves it: rollingUpdate maxUnavailable of spec.replicas rounded down (1 when it and maxSurge both resolve to 0); 0 for Recreate.",
		deploymentLabels, nil)
)

func updateDeployments(objs []any, ch chan<- prometheus.Metric) {
	for _, obj := range objs {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		l := []string{d.Namespace, d.Name}
		gauge(ch, deploymentSpecReplicasDesc, float64(deploymentReplicas(d)), l...)
		gauge(ch, deploymentAvailableDesc, float64(d.Status.AvailableReplicas), l...)
		gauge(ch, deploymentReadyDesc, float64(d.Status.ReadyReplicas), l...)
		gauge(ch, deploymentUpdatedDesc, float64(d.Status.UpdatedReplicas), l...)
		if n, ok := deploymentMaxUnavailable(d); ok {
			gauge(ch, deploymentMaxUnavailableDesc, float64(n), l...)
		}
	}
}

// deploymentReplicas is spec.replicas; the API server defaults a missing one to 1.
func deploymentReplicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// deploymentMaxUnavailable follows MaxUnavailable and ResolveFenceposts of
// k8s.io/kubernetes pkg/controller/deployment/util/deployment_util.go: 0 for
// Recreate or no replicas; else maxSurge (default 25%) rounded up and
// maxUnavailable (default 25%) rounded down against spec.replicas, with
// maxUnavailable 1 when both are 0, capped at spec.replicas. ok is false when
// a percentage does not parse (the API server's validation prevents it).
func deploymentMaxUnavailable(d *appsv1.Deployment) (n int32, ok bool) {
	replicas := deploymentReplicas(d)
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || replicas == 0 {
		return 0, true
	}
	defaultPercent := intstr.FromString("25%")
	maxSurge, maxUnavailable := &defaultPercent, &defaultPercent
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			maxSurge = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			maxUnavailable = ru.MaxUnavailable
		}
	}
	surge, err := intstr.GetScaledValueFromIntOrPercent(maxSurge, int(replicas), true)
	if err != nil {
		return 0, false
	}
	unavailable, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, int(replicas), false)
	if err != nil {
		return 0, false
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return min(int32(unavailable), replicas), true
}
