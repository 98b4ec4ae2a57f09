package workloads

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var (
	deploymentLabels = []string{"namespace", "deployment"}

	deploymentSpecReplicasFamily = &metricstore.Family{Name: "upgradeguard_deployment_spec_replicas",
		Help: "Replicas the Deployment wants (spec.replicas).",
		Type: metricstore.Gauge, LabelNames: deploymentLabels}
	deploymentAvailableFamily = &metricstore.Family{Name: "upgradeguard_deployment_status_replicas_available",
		Help: "Replicas of the Deployment available (ready for at least minReadySeconds), from its status.",
		Type: metricstore.Gauge, LabelNames: deploymentLabels}
	deploymentReadyFamily = &metricstore.Family{Name: "upgradeguard_deployment_status_replicas_ready",
		Help: "Replicas of the Deployment whose pods are Ready, from its status.",
		Type: metricstore.Gauge, LabelNames: deploymentLabels}
	deploymentUpdatedFamily = &metricstore.Family{Name: "upgradeguard_deployment_status_replicas_updated",
		Help: "Replicas of the Deployment running its current pod template, from its status.",
		Type: metricstore.Gauge, LabelNames: deploymentLabels}
	deploymentMaxUnavailableFamily = &metricstore.Family{Name: "upgradeguard_deployment_strategy_max_unavailable",
		Help: "Replicas the Deployment's strategy lets be unavailable, as the deployment controller resolves it: rollingUpdate maxUnavailable of spec.replicas rounded down (1 when it and maxSurge both resolve to 0); 0 for Recreate.",
		Type: metricstore.Gauge, LabelNames: deploymentLabels}
	deploymentGateHoldFamily = &metricstore.Family{Name: "upgradeguard_deployment_gate_hold",
		Help: "1 for a Deployment of upgradeguard gate hold (labelled app.kubernetes.io/name=upgradeguard and app.kubernetes.io/component=hold, on itself or its pod template), whose pods are ready only while the gate says GO: the gate sets it, its pods and the alerts on them aside. No series for other Deployments.",
		Type: metricstore.Gauge, LabelNames: deploymentLabels}
	deploymentFamilies = []*metricstore.Family{
		deploymentSpecReplicasFamily, deploymentAvailableFamily, deploymentReadyFamily, deploymentUpdatedFamily, deploymentMaxUnavailableFamily,
		deploymentGateHoldFamily,
	}
)

// renderDeployment renders a Deployment's series.
func renderDeployment(b *metricstore.Builder, d *kube.Deployment) {
	b.Add(deploymentSpecReplicasFamily, float64(d.Replicas), d.Namespace, d.Name)
	b.Add(deploymentAvailableFamily, float64(d.AvailableReplicas), d.Namespace, d.Name)
	b.Add(deploymentReadyFamily, float64(d.ReadyReplicas), d.Namespace, d.Name)
	b.Add(deploymentUpdatedFamily, float64(d.UpdatedReplicas), d.Namespace, d.Name)
	if n, ok := deploymentMaxUnavailable(d); ok {
		b.Add(deploymentMaxUnavailableFamily, float64(n), d.Namespace, d.Name)
	}
	if d.GateHold {
		b.Add(deploymentGateHoldFamily, 1, d.Namespace, d.Name)
	}
}

// deploymentMaxUnavailable follows MaxUnavailable and ResolveFenceposts of
// k8s.io/kubernetes pkg/controller/deployment/util/deployment_util.go: 0 for
// Recreate or no replicas; else maxSurge (default 25%) rounded up and
// maxUnavailable (default 25%) rounded down against spec.replicas, with
// maxUnavailable 1 when both are 0, capped at spec.replicas. ok is false when
// a percentage does not parse (the API server's validation prevents it).
func deploymentMaxUnavailable(d *kube.Deployment) (n int32, ok bool) {
	replicas := d.Replicas
	if d.Strategy == appsv1.RecreateDeploymentStrategyType || replicas == 0 {
		return 0, true
	}
	defaultPercent := intstr.FromString("25%")
	maxSurge, maxUnavailable := &defaultPercent, &defaultPercent
	if d.MaxSurge != nil {
		maxSurge = d.MaxSurge
	}
	if d.MaxUnavailable != nil {
		maxUnavailable = d.MaxUnavailable
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
