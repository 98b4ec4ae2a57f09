package promqlcheck

import "slices"

// AWSNodeMetrics are the metrics the VPC CNI's ipamd serves on the aws-node
// pods (port 61678), as amazon-vpc-cni-k8s registers them in
// utils/prometheusmetrics. Its counters have no _total suffix, and
// awscni_aws_api_latency_ms is a summary without quantiles, so only its _sum
// and _count series exist.
var AWSNodeMetrics = []string{
	"awscni_add_ip_req_count",
	"awscni_assigned_ip_addresses",
	"awscni_assigned_ip_per_cidr",
	"awscni_assigned_ip_per_eni",
	"awscni_aws_api_error_count",
	"awscni_aws_api_latency_ms_count",
	"awscni_aws_api_latency_ms_sum",
	"awscni_aws_utils_error_count",
	"awscni_del_ip_req_count",
	"awscni_ec2api_error_count",
	"awscni_ec2api_req_count",
	"awscni_eni_allocated",
	"awscni_eni_max",
	"awscni_force_removed_enis",
	"awscni_force_removed_ips",
	"awscni_ip_max",
	"awscni_ipamd_action_inprogress",
	"awscni_ipamd_error_count",
	"awscni_no_available_ip_addresses",
	"awscni_pod_eni_error_count",
	"awscni_reconcile_count",
	"awscni_total_ip_addresses",
	"awscni_total_ipv4_prefixes",
}

// KubeStateMetrics are the kube-state-metrics series upgradeguard's rules
// and dashboards may read (names as kube-state-metrics v2 serves them).
var KubeStateMetrics = []string{
	"kube_node_info",
	"kube_node_spec_unschedulable",
	"kube_node_status_condition",
	"kube_pod_info",
	"kube_pod_status_phase",
	"kube_pod_status_ready",
	"kube_pod_status_scheduled",
	"kube_pod_status_unschedulable",
	"kube_poddisruptionbudget_status_current_healthy",
	"kube_poddisruptionbudget_status_desired_healthy",
	"kube_poddisruptionbudget_status_expected_pods",
	"kube_poddisruptionbudget_status_pod_disruptions_allowed",
}

// APIServerMetrics are the Kubernetes API server's own series the rules
// read (k8s.io/apiserver pkg/endpoints/metrics/metrics.go).
var APIServerMetrics = []string{
	"apiserver_request_total",
	"apiserver_requested_deprecated_apis",
}

// PrometheusMetrics are the series Prometheus itself writes: the scrape
// health of every target and the state of the alerting rules.
var PrometheusMetrics = []string{
	"ALERTS",
	"ALERTS_FOR_STATE",
	"up",
}

// External returns every declared external metric, sorted.
func External() []string {
	out := slices.Concat(AWSNodeMetrics, KubeStateMetrics, APIServerMetrics, PrometheusMetrics)
	slices.Sort(out)
	return out
}
