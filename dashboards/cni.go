//lint:file-ignore SA1019 The v1 dashboard schema is what Grafana provisions from files and the dashboard sidecar; the SDK marks it deprecated in favour of dashboardv2, which needs Grafana 12's v2 API.

package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// awsCNI is the "AWS CNI" dashboard: the aws-node pods' ipamd metrics
// (port 61678) beside the exporter's subnet and node IP metrics.
//
// The awscni_* names and labels are those ipamd registers in
// amazon-vpc-cni-k8s (utils/prometheusmetrics): the gauges have no labels
// of their own, so a node is the scrape target (instance, and node where
// the scrape config relabels the pod's node name); ipamd has no
// warm pool metric, so warm IPs are total minus assigned; and
// awscni_aws_api_latency_ms is a summary without quantiles, so latency is
// its mean.
func awsCNI(o Options) *dashboard.DashboardBuilder {
	rate := func(metric string, matchers ...string) string {
		return fmt.Sprintf("rate(%s[$__rate_interval])", o.awsNode(metric, matchers...))
	}
	// node comes from a relabeling of the pod's node name (deploy/'s
	// PodMonitor does it); instance, the node's IP, is there in any case.
	byNode := func(metric string) string { return "sum by (node, instance) (" + o.awsNode(metric) + ")" }

	return newDashboard(o, uidCNI, "AWS CNI",
		"VPC CNI IP space during node replacement: the aws-node pods' ipamd (job "+o.AWSNodeJob+
			") and upgradeguard's subnet and node IP metrics (job "+o.ExporterJob+").").
		WithPanel(timeSeries("IPs assigned vs total per node",
			"ipamd's pod IPs assigned and IPs held (awscni_assigned_ip_addresses, awscni_total_ip_addresses) per aws-node "+
				"instance, and the exporter's pods holding a VPC CNI address and IP capacity per node (upgradeguard_node_pod_ips, upgradeguard_node_ip_capacity).",
			unitCount, 8,
			q(byNode("awscni_assigned_ip_addresses"), "{{node}} {{instance}} assigned"),
			q(byNode("awscni_total_ip_addresses"), "{{node}} {{instance}} total"),
			q("max by (node) ("+o.exporter("upgradeguard_node_pod_ips")+")", "{{node}} pod IPs"),
			q("max by (node) ("+o.exporter("upgradeguard_node_ip_capacity")+")", "{{node}} capacity"))).
		WithPanel(withThresholdLines(timeSeries("Warm IPs per node",
			"IPs ipamd holds but has not assigned (total minus assigned): what the next pods on the node start with. "+
				"At 0 a new pod waits for ipamd to attach more addresses, or fails when the node or subnet has none.",
			unitCount, 8,
			q(byNode("awscni_total_ip_addresses")+" - "+byNode("awscni_assigned_ip_addresses"), "{{node}} {{instance}}")),
			thresholds("red", step{1, "yellow"}, step{5, "green"}))).
		WithPanel(timeSeries("ENIs allocated vs max per node",
			"ENIs attached by ipamd (awscni_eni_allocated) and the most the instance can take, less unmanaged ENIs (awscni_eni_max). "+
				"A node at its maximum cannot grow its IP pool.",
			unitCount, 8,
			q(byNode("awscni_eni_allocated"), "{{node}} {{instance}} allocated"),
			q(byNode("awscni_eni_max"), "{{node}} {{instance}} max"))).
		WithPanel(timeSeries("Free IPs per subnet and zone",
			"Free addresses of each cluster subnet and of each zone (upgradeguard_subnet_available_ips, upgradeguard_zone_available_ips), "+
				"by role (node subnets; with custom networking, the ENIConfigs' pod subnets), "+
				"against the addresses the largest Auto Scaling group's surge nodes take at start (upgradeguard_aws_asg_surge_ips; "+
				"in the pod subnets upgradeguard_aws_asg_surge_pod_ips) and the most one node can hold (upgradeguard_node_ip_capacity).",
			unitCount, 8,
			q("max by (zone, subnet_id, role) ("+o.exporter("upgradeguard_subnet_available_ips")+")", "{{zone}} {{subnet_id}} {{role}}"),
			q("max by (account, zone, role) ("+o.exporter("upgradeguard_zone_available_ips")+")", "{{account}} {{zone}} (zone, {{role}})"),
			q("max by (account, region) ("+o.exporter("upgradeguard_aws_asg_surge_ips")+")", "{{account}} {{region}} IPs a surge takes at start"),
			q("max by (account, region) ("+o.exporter("upgradeguard_aws_asg_surge_pod_ips")+")", "{{account}} {{region}} of which in the pod subnets"),
			q("max("+o.exporter("upgradeguard_node_ip_capacity")+")", "largest node IP capacity"))).
		WithPanel(timeSeries("Free /28 prefixes per subnet and zone",
			"With prefix delegation: aligned /28 blocks EC2 can still delegate in each subnet and zone (upgradeguard_subnet_available_prefixes, "+
				"upgradeguard_zone_available_prefixes), against the prefixes the largest group's surge nodes take (upgradeguard_aws_asg_surge_prefixes). "+
				"Free addresses scattered over every block leave none: EC2 then refuses prefixes with InsufficientCidrBlocks.",
			unitCount, 8,
			q("max by (zone, subnet_id, role) ("+o.exporter("upgradeguard_subnet_available_prefixes")+")", "{{zone}} {{subnet_id}} {{role}}"),
			q("max by (account, zone, role) ("+o.exporter("upgradeguard_zone_available_prefixes")+")", "{{account}} {{zone}} (zone, {{role}})"),
			q("max by (account, region) ("+o.exporter("upgradeguard_aws_asg_surge_prefixes")+")", "{{account}} {{region}} prefixes a surge takes at start"))).
		WithPanel(timeSeries("IP assign and release rates",
			"Pod IP requests to ipamd (awscni_add_ip_req_count) and releases by reason (awscni_del_ip_req_count), cluster wide. "+
				"Node replacement shows as releases on the drained node and assigns on the new one.",
			unitReqRate, 8,
			q("sum("+rate("awscni_add_ip_req_count")+")", "assign"),
			q("sum by (reason) ("+rate("awscni_del_ip_req_count")+")", "release {{reason}}"))).
		WithPanel(timeSeries("ipamd errors",
			"Errors inside ipamd by function (awscni_ipamd_error_count).",
			unitCountPS, 8,
			q("sum by (fn) ("+rate("awscni_ipamd_error_count")+")", "{{fn}}"))).
		WithPanel(timeSeries("AWS API errors by code",
			"Errors of ipamd's AWS calls by API and error code (awscni_aws_api_error_count); RequestLimitExceeded is EC2 throttling, "+
				"which slows every node's IP allocation while many nodes start at once.",
			unitCountPS, 8,
			q("sum by (api, error) ("+rate("awscni_aws_api_error_count")+")", "{{api}} {{error}}"))).
		WithPanel(timeSeries("AWS API latency",
			"Mean latency of ipamd's AWS calls per API (awscni_aws_api_latency_ms, a summary without quantiles).",
			unitMillis, 8,
			q("sum by (api) ("+rate("awscni_aws_api_latency_ms_sum")+") / sum by (api) ("+rate("awscni_aws_api_latency_ms_count")+")", "{{api}}"))).
		WithPanel(withThresholdLines(timeSeries("No-available-IP events",
			"Pod IP assignments that failed because ipamd had no free address (awscni_no_available_ip_addresses), per node: "+
				"pods stuck in ContainerCreating.",
			unitCountPS, 8,
			q("sum by (node, instance) ("+rate("awscni_no_available_ip_addresses")+") > 0", "{{node}} {{instance}}")).
			NoValue("none"),
			thresholds("green", step{0.001, "red"})))
}
