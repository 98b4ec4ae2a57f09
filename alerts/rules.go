package alerts

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Group names.
const (
	GroupAWSQuotas = "upgradeguard-aws-quotas"
	GroupVPCCNI    = "upgradeguard-vpc-cni"
	GroupDrain     = "upgradeguard-drain"
	GroupNodes     = "upgradeguard-nodes"
	GroupExporter  = "upgradeguard-exporter"
	GroupWatchdog  = "upgradeguard-watchdog"
)

// Recording rules the dashboards and the gate read.
const (
	// RecordQuotaUsageRatio is usage over limit of each AWS quota: computed
	// from describe calls where the exporter can, else Service Quotas'
	// utilization report. Quotas with a limit of 0 have none.
	RecordQuotaUsageRatio = "upgradeguard:aws_quota_usage:ratio"
	// RecordQuotaUsageWithSurgeRatio is (usage + surge demand) over limit:
	// above 1, replacing the next node fails on that quota.
	RecordQuotaUsageWithSurgeRatio = "upgradeguard:aws_quota_usage_with_surge:ratio"
	// RecordQuotaHeadroomAfterSurge is limit - usage - surge demand, in the
	// quota's unit.
	RecordQuotaHeadroomAfterSurge = "upgradeguard:aws_quota_headroom:after_surge"
	// RecordAWSThrottledRatio is the share of the exporter's AWS requests
	// that were throttled, per service, over 5 minutes.
	RecordAWSThrottledRatio = "upgradeguard:aws_api_throttled_requests:ratio_rate5m"
	// RecordSurgeNodeIPs is the most subnet addresses a surge of one Auto
	// Scaling group takes at start, per cluster; without the awsquota
	// collector, the largest node IP capacity stands in for it.
	RecordSurgeNodeIPs = "upgradeguard:surge_node_ips:max"
	// RecordSurgePodIPs is, with VPC CNI custom networking, the most
	// addresses a surge of one group takes in the pod subnets, per cluster.
	RecordSurgePodIPs = "upgradeguard:surge_pod_ips:max"
	// RecordSurgePrefixes is, with prefix delegation, the most /28 prefixes
	// a surge of one group takes, per cluster.
	RecordSurgePrefixes = "upgradeguard:surge_prefixes:max"
	// RecordZoneIPHeadroom is a zone's free addresses minus
	// RecordSurgeNodeIPs: below 0, a replacement node there gets no pod IPs.
	RecordZoneIPHeadroom = "upgradeguard:zone_ip_headroom:after_surge"
	// RecordNodeIPUtilization is pods holding a VPC CNI address over the
	// node's IP capacity, from the exporter.
	RecordNodeIPUtilization = "upgradeguard:node_ip_utilization:ratio"
	// RecordCNIIPUtilization is ipamd's assigned over total addresses per
	// aws-node target.
	RecordCNIIPUtilization = "upgradeguard:awscni_ip_utilization:ratio"
	// RecordNodeDrainBlockedPods is the pods a drain of the node would be
	// refused, all PDBs and reasons together.
	RecordNodeDrainBlockedPods = "upgradeguard:node_drain_blocked_pods:sum"
	// RecordPDBsBlocking counts the PDBs that allow no disruption while
	// they have pods; 0 when the pdb collector runs and none does.
	RecordPDBsBlocking = "upgradeguard:pdbs_blocking:count"
	// RecordNodesNotReady counts nodes whose Ready condition is not True.
	RecordNodesNotReady = "upgradeguard:nodes_not_ready:count"
	// RecordKubeletVersions counts the distinct kubelet versions.
	RecordKubeletVersions = "upgradeguard:kubelet_versions:count"
)

// Thresholds.
const (
	quotaWarningRatio  = 0.8
	quotaCriticalRatio = 0.9
	// The refreshers of usage (cni, awsquota_usage; default interval 5m)
	// and of quota values (awsquota_limits, awsquota_report; default 1h)
	// are stale after several missed intervals.
	staleUsageSeconds = 30 * 60
	staleQuotaSeconds = 3 * 60 * 60
	throttledRatio    = 0.1
	cniIPPoolRatio    = 0.9
	flappingChanges   = 2
)

// throttleCodes are the AWS error codes awsapi.IsThrottle counts as
// throttling, as upgradeguard_aws_api_requests_total's code label has them.
const throttleCodes = "Throttling|ThrottlingException|RequestLimitExceeded|TooManyRequestsException|RequestThrottled|RequestThrottledException|SlowDown|EC2ThrottledException|.+Throttled"

func selector(metric, job string, matchers []string) string {
	all := append([]string{"job=" + strconv.Quote(job)}, matchers...)
	return metric + "{" + strings.Join(all, ", ") + "}"
}

func (o Options) exp(metric string, matchers ...string) string {
	return selector(metric, o.ExporterJob, matchers)
}

// ShutDownTaints are the taint keys of a node whose machine is shut down:
// the cloud node lifecycle controller's (k8s.io/cloud-provider
// api/well_known_taints.go TaintNodeShutdown, on a NotReady node whose
// instance is stopped, as a stopped or warm-pool instance is) and the
// non-graceful node shutdown's (k8s.io/api core/v1 well_known_taints.go
// TaintNodeOutOfService, set by an operator). Such a node is NotReady and
// its Lease unrenewed on purpose: the node alerts leave it out, and the
// gate sets it aside by default.
var ShutDownTaints = []string{"node.cloudprovider.kubernetes.io/shutdown", "node.kubernetes.io/out-of-service"}

// unlessShutDown drops from a per-node expression the series of nodes
// tainted with a ShutDownTaints key whose kubelet does not renew its Lease.
// The cloud node lifecycle controller removes the shutdown taint only once
// the node is Ready again (k8s.io/cloud-provider controllers/nodelifecycle
// MonitorNodes), so an instance started again whose node stays NotReady
// keeps it while its kubelet runs: that node is not shut down, and the
// alerts stay on it (the gate's node view applies the same rule).
func (o Options) unlessShutDown() string {
	keys := make([]string, len(ShutDownTaints))
	for i, k := range ShutDownTaints {
		keys[i] = regexp.QuoteMeta(k)
	}
	on := " on (" + o.ClusterLabel + ", node) "
	return " unless" + on + "(" + o.exp("upgradeguard_node_spec_taint", "key=~"+strconv.Quote(strings.Join(keys, "|"))) +
		" unless" + on + "(" + o.exp("upgradeguard_node_heartbeat_age_seconds") + " <=" + on + o.exp("upgradeguard_node_lease_duration_seconds") + "))"
}

func (o Options) cni(metric string, matchers ...string) string {
	return selector(metric, o.AWSNodeJob, matchers)
}

func (o Options) ksm(metric string, matchers ...string) string {
	return selector(metric, o.KubeStateMetricsJob, matchers)
}

// by is an aggregation clause that keeps the cluster label and labels.
func (o Options) by(labels ...string) string {
	return "by (" + strings.Join(append([]string{o.ClusterLabel}, labels...), ", ") + ")"
}

// on is the on () clause of the cluster label and labels.
func (o Options) on(labels ...string) string {
	return "on (" + strings.Join(append([]string{o.ClusterLabel}, labels...), ", ") + ")"
}

// awsTarget are the labels of an AWS series' account and region: the
// rules aggregate and match AWS series per target.
var awsTarget = []string{"account", "region"}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// definitions are the rule groups, unsorted, without overrides applied.
func definitions(o Options) []group {
	quotaLabels := `{{ $labels.quota_name }} ({{ $labels.service }} {{ $labels.quota_code }}) in account {{ $labels.account }}, {{ $labels.region }}`
	return []group{
		{
			name: GroupAWSQuotas,
			records: []Record{
				{Name: RecordQuotaUsageRatio, Expr: o.exp("upgradeguard_aws_quota_usage") + " / (" + o.exp("upgradeguard_aws_quota_limit") + " > 0)" +
					" or " + o.exp("upgradeguard_aws_quota_utilization_ratio")},
				{Name: RecordQuotaUsageWithSurgeRatio, Expr: "(" + o.exp("upgradeguard_aws_quota_usage") + " + " + o.exp("upgradeguard_aws_quota_surge_demand") + ")" +
					" / (" + o.exp("upgradeguard_aws_quota_limit") + " > 0)"},
				{Name: RecordQuotaHeadroomAfterSurge, Expr: o.exp("upgradeguard_aws_quota_limit") + " - " + o.exp("upgradeguard_aws_quota_usage") +
					" - " + o.exp("upgradeguard_aws_quota_surge_demand")},
				{Name: RecordAWSThrottledRatio, Expr: "sum " + o.by("job", "account", "region", "service") + " (rate(" + o.exp("upgradeguard_aws_api_requests_total", `code=~"`+throttleCodes+`"`) + "[5m])" +
					" or 0 * rate(" + o.exp("upgradeguard_aws_api_requests_total") + "[5m]))" +
					" / sum " + o.by("job", "account", "region", "service") + " (rate(" + o.exp("upgradeguard_aws_api_requests_total") + "[5m]))"},
			},
			alerts: []Alert{
				{
					Name: "UpgradeGuardAWSQuotaUsageHigh", Severity: "warning", For: 15 * time.Minute,
					Expr:        RecordQuotaUsageRatio + " > " + num(quotaWarningRatio),
					Summary:     "An AWS service quota is more than 80% used.",
					Description: "AWS quota " + quotaLabels + " is {{ $value | humanizePercentage }} used; new nodes, ENIs or volumes of an upgrade may hit it.",
				},
				{
					Name: "UpgradeGuardAWSQuotaUsageHigh", Severity: "critical", For: 15 * time.Minute,
					Expr:        RecordQuotaUsageRatio + " > " + num(quotaCriticalRatio),
					Summary:     "An AWS service quota is more than 90% used.",
					Description: "AWS quota " + quotaLabels + " is {{ $value | humanizePercentage }} used; new nodes, ENIs or volumes of an upgrade may hit it.",
				},
				{
					Name: "UpgradeGuardAWSQuotaSurgeExceedsLimit", Severity: "critical", For: 10 * time.Minute,
					Expr:        RecordQuotaUsageWithSurgeRatio + " > 1 and " + o.exp("upgradeguard_aws_quota_surge_demand") + " > 0",
					Summary:     "Replacing the next node would exceed an AWS service quota.",
					Description: "Usage plus the surge demand of the largest Auto Scaling group would be {{ $value | humanizePercentage }} of AWS quota " + quotaLabels + "; the next node replacement would fail to launch.",
				},
				{
					Name: "UpgradeGuardAWSDataStale", Severity: "warning", For: 5 * time.Minute,
					Expr: "time() - " + o.exp("upgradeguard_aws_refresh_last_success_timestamp_seconds", `collector=~"cni|awsquota_usage"`) + " > " + num(staleUsageSeconds) +
						" or time() - " + o.exp("upgradeguard_aws_refresh_last_success_timestamp_seconds", `collector=~"awsquota_limits|awsquota_report"`) + " > " + num(staleQuotaSeconds),
					Summary:     "The exporter's AWS data is stale.",
					Description: "The last complete {{ $labels.collector }} refresh of upgradeguard {{ $labels.instance }}{{ with $labels.account }} for account {{ . }}{{ end }} in {{ $labels.region }} ended {{ $value | humanizeDuration }} ago; quota, surge and IP alerts judge old data.",
				},
				{
					Name: "UpgradeGuardAWSAPIThrottled", Severity: "warning", For: 30 * time.Minute,
					Expr:        RecordAWSThrottledRatio + " > " + num(throttledRatio),
					Summary:     "AWS throttles upgradeguard's requests.",
					Description: "{{ $value | humanizePercentage }} of the exporter's {{ $labels.service }} requests{{ with $labels.account }} in account {{ . }}, {{ $labels.region }}{{ end }} (job {{ $labels.job }}) have been throttled for " + forPlaceholder + "; the account's API rate is exhausted, which slows node launches too.",
				},
			},
		},
		{
			name: GroupVPCCNI,
			records: []Record{
				// Per AWS account and region: a zone's free space is
				// compared with the surge of its own account's groups.
				{Name: RecordSurgeNodeIPs, Expr: "max " + o.by(awsTarget...) + " (" + o.exp("upgradeguard_aws_asg_surge_ips") + ")" +
					" or max " + o.by(awsTarget...) + " (" + o.exp("upgradeguard_node_ip_capacity") + ")"},
				{Name: RecordSurgePodIPs, Expr: "max " + o.by(awsTarget...) + " (" + o.exp("upgradeguard_aws_asg_surge_pod_ips") + ")"},
				{Name: RecordSurgePrefixes, Expr: "max " + o.by(awsTarget...) + " (" + o.exp("upgradeguard_aws_asg_surge_prefixes") + ")"},
				{Name: RecordZoneIPHeadroom, Expr: o.exp("upgradeguard_zone_available_ips") + " - " + o.on(awsTarget...) + " group_left () " + RecordSurgeNodeIPs},
				{Name: RecordNodeIPUtilization, Expr: o.exp("upgradeguard_node_pod_ips") + " / (" + o.exp("upgradeguard_node_ip_capacity") + " > 0)"},
				{Name: RecordCNIIPUtilization, Expr: o.cni("awscni_assigned_ip_addresses") + " / (" + o.cni("awscni_total_ip_addresses") + " > 0)"},
			},
			alerts: []Alert{
				{
					// Without custom networking the node subnets hold it all;
					// with it (surge pod series), the node subnets hold each
					// node's primary address and the pod subnets the rest.
					Name: "UpgradeGuardZoneIPsBelowSurgeNeed", Severity: "critical", For: 10 * time.Minute,
					Expr: o.exp("upgradeguard_zone_available_ips", `role!="pod"`) + " < " + o.on(awsTarget...) + " group_left () (" + RecordSurgeNodeIPs + " unless " + o.on(awsTarget...) + " " + RecordSurgePodIPs + ")" +
						" or " + o.exp("upgradeguard_zone_available_ips", `role!="pod"`) + " < " + o.on(awsTarget...) + " group_left () (" + RecordSurgeNodeIPs + " - " + o.on(awsTarget...) + " " + RecordSurgePodIPs + ")" +
						" or " + o.exp("upgradeguard_zone_available_ips", `role="pod"`) + " < " + o.on(awsTarget...) + " group_left () " + RecordSurgePodIPs,
					Summary:     "A zone has fewer free IP addresses than a replacement node takes.",
					Description: "The cluster subnets in zone {{ $labels.zone }}{{ if $labels.role }} ({{ $labels.role }} subnets){{ end }}{{ with $labels.account }} of account {{ . }}{{ end }} have {{ $value }} free IP addresses, fewer than a surge node takes at start; a node replaced there gets no pod IPs.",
				},
				{
					// With custom networking the pods' prefixes come from the
					// pod subnets, else from the node subnets.
					Name: "UpgradeGuardZonePrefixesBelowSurgeNeed", Severity: "critical", For: 10 * time.Minute,
					Expr: "(" + o.exp("upgradeguard_zone_available_prefixes", `role="pod"`) +
						" or " + o.exp("upgradeguard_zone_available_prefixes", `role!="pod"`) + " unless " + o.on(awsTarget...) + " " + o.exp("upgradeguard_zone_available_prefixes", `role="pod"`) + ")" +
						" < " + o.on(awsTarget...) + " group_left () " + RecordSurgePrefixes,
					Summary:     "A zone has fewer free /28 blocks than a replacement node's VPC CNI takes with prefix delegation.",
					Description: "The {{ $labels.role }} subnets in zone {{ $labels.zone }}{{ with $labels.account }} of account {{ . }}{{ end }} have {{ $value }} free aligned /28 blocks, fewer than a surge node takes at start; EC2 refuses its prefixes (InsufficientCidrBlocks) whatever the free addresses.",
				},
				{
					Name: "UpgradeGuardCNIMetricsMissing", Severity: "warning", For: 15 * time.Minute,
					Expr: "max " + o.by() + " (" + o.exp("upgradeguard_vpc_cni_nodes") + ") > 0" +
						" unless on (" + o.ClusterLabel + ") count " + o.by() + " (" + o.cni("awscni_total_ip_addresses") + ")",
					Summary:     "The cluster runs the VPC CNI but Prometheus has none of its metrics.",
					Description: "The aws-node DaemonSet{{ with $labels." + o.ClusterLabel + " }} of cluster {{ . }}{{ end }} should run on {{ $value }} nodes, but there is no awscni_* series of job " + strconv.Quote(o.AWSNodeJob) + ": every VPC CNI alert is silent and the gate's IP check is UNKNOWN.",
				},
				{
					Name: "UpgradeGuardCNINodeIPPoolExhausted", Severity: "warning", For: 10 * time.Minute,
					Expr: RecordCNIIPUtilization + " > " + num(cniIPPoolRatio) +
						" and " + o.cni("awscni_eni_allocated") + " >= " + o.cni("awscni_eni_max"),
					Summary:     "A node's VPC CNI IP pool is nearly exhausted and it can attach no more ENIs.",
					Description: "ipamd on node {{ $labels.node }} ({{ $labels.instance }}) has assigned {{ $value | humanizePercentage }} of its IP addresses with every ENI attached; pods moved there by a drain will not start.",
				},
				{
					Name: "UpgradeGuardCNINoAvailableIPs", Severity: "warning", For: 10 * time.Minute,
					Expr:        "sum " + o.by("node", "instance") + " (increase(" + o.cni("awscni_no_available_ip_addresses") + "[5m])) > 0",
					Summary:     "The VPC CNI fails pod IP assignments for lack of addresses.",
					Description: "ipamd on node {{ $labels.node }} ({{ $labels.instance }}) failed {{ $value | humanize }} pod IP assignments in 5 minutes for lack of a free address.",
				},
				{
					Name: "UpgradeGuardCNIIpamdErrors", Severity: "warning", For: 15 * time.Minute,
					Expr:        "sum " + o.by("node", "instance", "fn") + " (increase(" + o.cni("awscni_ipamd_error_count") + "[10m])) > 0",
					Summary:     "The VPC CNI's ipamd keeps reporting errors.",
					Description: "ipamd on node {{ $labels.node }} ({{ $labels.instance }}) reported {{ $value | humanize }} errors in {{ $labels.fn }} in 10 minutes, continuously for " + forPlaceholder + ".",
				},
				{
					Name: "UpgradeGuardCNIEC2APIThrottled", Severity: "warning", For: 15 * time.Minute,
					Expr:        "sum " + o.by("api") + " (increase(" + o.cni("awscni_aws_api_error_count", `error="RequestLimitExceeded"`) + "[10m])) > 0",
					Summary:     "EC2 throttles the VPC CNI.",
					Description: "EC2 refused {{ $value | humanize }} {{ $labels.api }} calls of aws-node with RequestLimitExceeded in 10 minutes, continuously for " + forPlaceholder + "; new nodes get their ENIs and pod IPs late.",
				},
			},
		},
		{
			name: GroupDrain,
			records: []Record{
				{Name: RecordNodeDrainBlockedPods, Expr: "sum without (namespace, pdb, reason) (" + o.exp("upgradeguard_node_drain_blocked_pods") + ")"},
				{Name: RecordPDBsBlocking, Expr: "count " + o.by() + " (" + o.exp("upgradeguard_pdb_disruptions_allowed") + " == 0 and " + o.exp("upgradeguard_pdb_expected_pods") + " > 0)" +
					" or max " + o.by() + " (0 * " + o.exp("upgradeguard_collector_success", `collector="pdb"`) + ")"},
			},
			alerts: []Alert{
				{
					Name: "UpgradeGuardPDBDisruptionsNotAllowed", Severity: "warning", For: 15 * time.Minute,
					Expr:        o.exp("upgradeguard_pdb_disruptions_allowed") + " == 0 and " + o.exp("upgradeguard_pdb_expected_pods") + " > 0",
					Summary:     "A PodDisruptionBudget allows no disruption, which stalls node drains.",
					Description: "PodDisruptionBudget {{ $labels.namespace }}/{{ $labels.pdb }} has allowed {{ $value }} disruptions for " + forPlaceholder + "; a drain of any node running its pods waits until it allows one.",
				},
				{
					Name: "UpgradeGuardPDBUnsatisfiable", Severity: "warning", For: 15 * time.Minute,
					Expr:        o.exp("upgradeguard_pdb_unsatisfiable") + " == 1",
					Summary:     "A PodDisruptionBudget can never allow an eviction.",
					Description: "PodDisruptionBudget {{ $labels.namespace }}/{{ $labels.pdb }} can never allow an eviction (unsatisfiable: {{ $value }}): maxUnavailable is 0, or minAvailable is at least its expected pods; a drain of a node running its pods never finishes.",
				},
				{
					Name: "UpgradeGuardCordonedNodeDrainBlocked", Severity: "warning", For: 15 * time.Minute,
					Expr:        RecordNodeDrainBlockedPods + " > 0 and " + o.exp("upgradeguard_node_unschedulable") + " == 1",
					Summary:     "A cordoned node cannot be drained because of PodDisruptionBudgets.",
					Description: "Node {{ $labels.node }} is cordoned and {{ $value }} of its pods have been refused eviction by their PodDisruptionBudgets for " + forPlaceholder + "; its replacement is stuck.",
				},
				{
					Name: "UpgradeGuardPodsUnschedulable", Severity: "warning", For: 15 * time.Minute,
					Expr:        "sum " + o.by("namespace") + " (" + o.ksm("kube_pod_status_unschedulable") + ") > 0",
					Summary:     "Pods cannot be scheduled, so their PodDisruptionBudgets stay short.",
					Description: "{{ $value }} pods in namespace {{ $labels.namespace }} have been unschedulable for " + forPlaceholder + "; pods evicted by a drain that cannot start elsewhere keep their PodDisruptionBudget from allowing the next eviction.",
				},
			},
		},
		{
			name: GroupNodes,
			records: []Record{
				{Name: RecordNodesNotReady, Expr: "sum " + o.by() + " (max " + o.by("node") + " (1 - " + o.exp("upgradeguard_node_ready") + "))"},
				{Name: RecordKubeletVersions, Expr: "count " + o.by() + " (count " + o.by("kubelet_version") + " (" + o.exp("upgradeguard_node_info") + "))"},
			},
			alerts: []Alert{
				{
					Name: "UpgradeGuardNodeNotReady", Severity: "warning", For: 10 * time.Minute,
					Expr:        o.exp("upgradeguard_node_ready") + " == 0 unless " + o.exp("upgradeguard_node_unschedulable") + " == 1" + o.unlessShutDown(),
					Summary:     "A schedulable node is not Ready.",
					Description: "Node {{ $labels.node }} is not cordoned and its Ready condition has not been True (value {{ $value }}) for " + forPlaceholder + ".",
				},
				{
					Name: "UpgradeGuardNodeHeartbeatOverdue", Severity: "warning", For: 5 * time.Minute,
					Expr:        o.exp("upgradeguard_node_heartbeat_age_seconds") + " > " + o.exp("upgradeguard_node_lease_duration_seconds") + o.unlessShutDown(),
					Summary:     "A kubelet has stopped renewing its node Lease.",
					Description: "The Lease of node {{ $labels.node }} was last renewed {{ $value | humanizeDuration }} ago, longer than its lease duration; its kubelet is wedged or cut off.",
				},
				{
					Name: "UpgradeGuardNodeLeaseMissing", Severity: "warning", For: 15 * time.Minute,
					Expr:        "(" + o.exp("upgradeguard_node_ready") + " unless " + o.exp("upgradeguard_node_heartbeat_age_seconds") + ")" + o.unlessShutDown(),
					Summary:     "A node has no Lease in kube-node-lease, so its heartbeat is unknown.",
					Description: "Node {{ $labels.node }} (Ready: {{ $value }}) has had no Lease in kube-node-lease for " + forPlaceholder + "; whether its kubelet is alive is unknown.",
				},
				{
					Name: "UpgradeGuardNodeReadinessFlapping", Severity: "warning", For: 15 * time.Minute,
					Expr:        "max " + o.by("node") + " (increase(" + o.exp("upgradeguard_node_ready_transitions_total") + "[15m])) > " + num(flappingChanges),
					Summary:     "A node's readiness keeps changing.",
					Description: "The Ready condition of node {{ $labels.node }} changed {{ $value | humanize }} times in 15 minutes.",
				},
				{
					Name: "UpgradeGuardNodeCordonedTooLong", Severity: "warning", For: time.Hour,
					Expr:        "time() - " + o.exp("upgradeguard_node_created_timestamp_seconds") + " and " + o.exp("upgradeguard_node_unschedulable") + " == 1",
					Summary:     "A node has been cordoned for a long time; an upgrade may be stuck.",
					Description: "Node {{ $labels.node }}, created {{ $value | humanizeDuration }} ago, has been cordoned for over " + forPlaceholder + " without being replaced.",
				},
				{
					// kops validate's comparison of a group's instances with
					// its nodes; the `for` covers a new instance's start.
					Name: "UpgradeGuardASGInstanceWithoutNode", Severity: "warning", For: 15 * time.Minute,
					Expr: "(time() - " + o.exp("upgradeguard_aws_asg_instance_launch_time_seconds") + ")" +
						" * on (" + o.ClusterLabel + ", account, region, asg, instance_id) group_left (nodegroup, zone) " +
						o.exp("upgradeguard_aws_asg_instance_info", `lifecycle_state="InService"`) +
						" unless on (" + o.ClusterLabel + ", instance_id) " + o.exp("upgradeguard_node_info"),
					Summary: "An Auto Scaling group's instance in service has no node; the group is a node short.",
					Description: "Instance {{ $labels.instance_id }} of Auto Scaling group {{ $labels.asg }} (node group {{ $labels.nodegroup }}, {{ $labels.zone }}) was launched {{ $value | humanizeDuration }} ago" +
						" and has been in service for " + forPlaceholder + " without a node of its instance ID: its kubelet never registered, or its node was deleted.",
				},
				{
					Name: "UpgradeGuardKubeletVersionsMixed", Severity: "warning", For: 4 * time.Hour,
					Expr:        RecordKubeletVersions + " > 1",
					Summary:     "Nodes have run different kubelet versions for a long time; an upgrade is unfinished.",
					Description: "The nodes{{ with $labels." + o.ClusterLabel + " }} of cluster {{ . }}{{ end }} have run {{ $value }} different kubelet versions for " + forPlaceholder + ".",
				},
			},
		},
		{
			// Proves rule evaluation alive end to end; the gate requires it.
			name: GroupWatchdog,
			alerts: []Alert{
				{
					Name: WatchdogAlert, Severity: WatchdogSeverity,
					Expr:    "vector(1)",
					Summary: "The upgradeguard rules are being evaluated; this alert always fires.",
					Description: "upgradeguard's rules are evaluated{{ with $labels." + o.ClusterLabel + " }} for cluster {{ . }}{{ end }}: this alert (value {{ $value }}) always fires while they are." +
						" The upgrade gate requires it before an empty answer about alerts may count as none firing.",
				},
			},
		},
		{
			name: GroupExporter,
			alerts: []Alert{
				{
					Name: "UpgradeGuardExporterDown", Severity: "critical", For: 10 * time.Minute,
					// Every target down, or none at all: either way {job}, and
					// the value is the number of targets up.
					Expr: "sum " + o.by("job") + " (" + selector("up", o.ExporterJob, nil) + ") == 0" +
						" or 0 * absent(" + selector("up", o.ExporterJob, nil) + ")",
					Summary:     "The upgradeguard exporter is down or not scraped.",
					Description: "{{ $value }} targets of job {{ $labels.job }} have been up for " + forPlaceholder + "; node, PDB, IP and quota alerts are blind and the gate refuses every node.",
				},
				{
					// One target down: with shards (deploy/overlays/sharded)
					// its nodes are blind, and the gate's monitoring/up row
					// fails while any exporter target is down.
					Name: "UpgradeGuardExporterTargetDown", Severity: "warning", For: 10 * time.Minute,
					Expr:        o.exp("up") + " == 0",
					Summary:     "A target of the upgradeguard exporter's job is down.",
					Description: "Target {{ $labels.instance }} of job {{ $labels.job }} has had up {{ $value }} for " + forPlaceholder + "; with shards, the nodes of its shard are blind to every node and PDB alert, and the gate refuses every node while it is down.",
				},
				{
					// A shard whose pod is evicted and Pending is gone from
					// service discovery: no up series at all, so
					// UpgradeGuardExporterTargetDown cannot fire. Every exporter
					// of per-node series says which shard of how many it is;
					// the value is the number of shards missing, and the shard
					// is named when it reported within the last hour.
					Name: "UpgradeGuardExporterShardMissing", Severity: "warning", For: 10 * time.Minute,
					Expr:        shardsMissing(o),
					Summary:     "An exporter shard reports no series; the nodes hashed to it are not watched.",
					Description: "Job {{ $labels.job }} has been {{ $value }} exporter shards short of its --total-shards for " + forPlaceholder + "{{ with $labels.shard }} (shard {{ . }} reported within the last hour){{ end }}: the nodes of the missing shards are in no node, drain or PDB series, their alerts are blind, and the gate answers UNKNOWN for the nodes rows.",
				},
				{
					Name: "UpgradeGuardCollectorFailing", Severity: "warning", For: 10 * time.Minute,
					Expr:        o.exp("upgradeguard_collector_success") + " == 0",
					Summary:     "An upgradeguard collector is failing.",
					Description: "Collector {{ $labels.collector }} of upgradeguard {{ $labels.instance }} has reported success {{ $value }} for " + forPlaceholder + "; its metrics are the last known state.",
				},
			},
		},
	}
}

// shardsMissing is the expression of UpgradeGuardExporterShardMissing: per
// job, the shards upgradeguard_exporter_total_shards says there are (its
// value, the largest while a rollout changes it) minus the distinct shards
// reporting, when above 0; with the shard label of a shard that reported
// within the last hour and no longer does, else without.
func shardsMissing(o Options) string {
	series := o.exp("upgradeguard_exporter_total_shards")
	missing := "(max " + o.by("job") + " (" + series + ") - count " + o.by("job") + " (group " + o.by("job", "shard") + " (" + series + ")) > 0)"
	gone := "(group " + o.by("job", "shard") + " (max_over_time(" + series + "[1h])) unless on (" + o.ClusterLabel + ", job, shard) " + series + ")"
	return missing + " * on (" + o.ClusterLabel + ", job) group_right () " + gone + " or on (" + o.ClusterLabel + ", job) " + missing
}
