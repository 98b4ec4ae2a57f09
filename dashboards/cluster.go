//lint:file-ignore SA1019 The v1 dashboard schema is what Grafana provisions from files and the dashboard sidecar; the SDK marks it deprecated in favour of dashboardv2, which needs Grafana 12's v2 API.

package dashboards

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// clusterUpgrade is the "Cluster upgrade" dashboard: the whole cluster
// while its nodes are replaced. Stats on top answer "can the roll go on?";
// below, the upgrade's progress, drains, capacity and health over time.
func clusterUpgrade(o Options) *dashboard.DashboardBuilder {
	ready := o.exporter("upgradeguard_node_ready")
	notReady := "count(" + ready + ") - sum(" + ready + ")"
	cordoned := "sum(" + o.exporter("upgradeguard_node_unschedulable") + ")"
	drainable := o.exporter("upgradeguard_node_drainable")
	disruptions := o.exporter("upgradeguard_pdb_disruptions_allowed")
	pdbsAtZero := "count(" + disruptions + " == 0)"
	pending := "sum(" + o.ksm("kube_pod_status_phase", `phase="Pending"`) + ")"
	firing := o.configuredAlertsSelector(`alertstate="firing"`)
	zoneIPs := "max by (account, zone, role) (" + o.exporter("upgradeguard_zone_available_ips") + ")"
	atZero := func(metric string) string {
		return o.exporter(metric) + " and on (namespace, pdb) (" + disruptions + " == 0)"
	}
	// Services without a ready endpoint, and workloads below their desired
	// replicas (collectors/workloads).
	readyEndpoints := o.exporter("upgradeguard_service_endpoints", `ready="true"`)
	noEndpoints := readyEndpoints + " == 0"
	below := func(available, desired string) string {
		return o.exporter(available) + " < " + o.exporter(desired)
	}
	deploymentsBelow := below("upgradeguard_deployment_status_replicas_available", "upgradeguard_deployment_spec_replicas")
	statefulSetsBelow := below("upgradeguard_statefulset_status_replicas_available", "upgradeguard_statefulset_spec_replicas")
	daemonSetsBelow := below("upgradeguard_daemonset_status_number_available", "upgradeguard_daemonset_status_desired_number_scheduled")

	return newDashboard(o, uidCluster, "Cluster upgrade",
		"The cluster while its nodes are replaced: kubelet versions, readiness, Services without a ready endpoint and workloads below desired, "+
			"drains and the PodDisruptionBudgets that block them, "+
			"IP and quota capacity for new nodes, pending pods and firing alerts.").
		WithRow(dashboard.NewRowBuilder("Can the roll go on?")).
		WithPanel(singleStat("Nodes Ready", "Nodes whose Ready condition is True.", unitCount,
			"sum("+ready+")", thresholds("blue"))).
		WithPanel(singleStat("Nodes NotReady", "Nodes whose Ready condition is False, Unknown or missing, cordoned ones included.", unitCount,
			notReady, thresholds("green", step{1, "red"}))).
		WithPanel(singleStat("Cordoned nodes", "Nodes marked unschedulable: being drained, or left cordoned by a stuck roll.", unitCount,
			cordoned, thresholds("green", step{1, "yellow"}))).
		WithPanel(singleStat("Oldest heartbeat", "Age of the oldest kubelet Lease renewal. Kubelets renew every 10s by default; "+
			"past the lease duration (40s by default) the node is marked NotReady.", unitSeconds,
			"max("+o.exporter("upgradeguard_node_heartbeat_age_seconds")+")", thresholds("green", step{20, "yellow"}, step{40, "red"}))).
		WithPanel(singleStat("Drainable nodes", "Nodes on which no PodDisruptionBudget would refuse an eviction now.", unitCount,
			"sum("+drainable+")", thresholds("blue"))).
		WithPanel(singleStat("PDBs at 0 disruptions", "PodDisruptionBudgets that allow no eviction now: a drain of a node with their pods waits.", unitCount,
			pdbsAtZero+" or vector(0)", thresholds("green", step{1, "orange"}))).
		WithPanel(singleStat("Pending pods", "Pods in phase Pending (kube-state-metrics): evicted pods waiting for room, or for an IP.", unitCount,
			pending, thresholds("green", step{1, "yellow"}, step{20, "red"}))).
		WithPanel(singleStat("Firing alerts", "Configured alerts firing now.", unitCount,
			"count("+firing+") or vector(0)", thresholds("green", step{1, "red"}))).
		WithRow(dashboard.NewRowBuilder("Upgrade progress")).
		WithPanel(stacked(timeSeries("Nodes by kubelet version", "Nodes per kubelet version: the upgrade's progress, old versions shrinking as new ones grow.", unitCount, 12,
			q("count by (kubelet_version) ("+o.exporter("upgradeguard_node_info")+")", "{{kubelet_version}}")))).
		WithPanel(timeSeries("Ready and NotReady nodes", "Nodes by Ready condition.", unitCount, 12,
			q("sum("+ready+")", "Ready"),
			q(notReady, "NotReady")).
			OverrideByName("NotReady", fixedColor("red")).
			OverrideByName("Ready", fixedColor("green"))).
		WithRow(dashboard.NewRowBuilder("Availability")).
		WithPanel(timeSeries("Services without a ready endpoint", "Services whose EndpointSlices list no ready endpoint: their clients get errors. "+
			"A drain that evicts a Service's only pods shows here until they run again elsewhere.", unitCount, 12,
			q("count("+noEndpoints+") or vector(0)", "Services without a ready endpoint")).
			OverrideByName("Services without a ready endpoint", fixedColor("red"))).
		WithPanel(timeSeries("Workloads below desired", "Deployments, StatefulSets and DaemonSets with fewer available replicas than desired: "+
			"evicted pods not running again yet, or pods that cannot start.", unitCount, 12,
			q("count("+deploymentsBelow+") or vector(0)", "Deployments"),
			q("count("+statefulSetsBelow+") or vector(0)", "StatefulSets"),
			q("count("+daemonSetsBelow+") or vector(0)", "DaemonSets"))).
		WithPanel(instantTable("Services without a ready endpoint now", "Services with no ready endpoint, and their not-ready ones "+
			"(terminating, or failing their readiness probe).", unitCount, 12, 8,
			[]string{"namespace", "service"},
			map[string]string{"Value #A": "Ready endpoints", "Value #B": "Not-ready endpoints", "namespace": "Namespace", "service": "Service"},
			noEndpoints,
			o.exporter("upgradeguard_service_endpoints", `ready="false"`)+" and on (namespace, service) ("+noEndpoints+")")).
		WithPanel(instantTable("Deployments below desired now", "Deployments with fewer available replicas than desired: available, desired, "+
			"and how many their strategy lets be unavailable.", unitCount, 12, 8,
			[]string{"namespace", "deployment"},
			map[string]string{"Value #A": "Available", "Value #B": "Desired", "Value #C": "Max unavailable", "namespace": "Namespace", "deployment": "Deployment"},
			deploymentsBelow,
			o.exporter("upgradeguard_deployment_spec_replicas")+" and on (namespace, deployment) ("+deploymentsBelow+")",
			o.exporter("upgradeguard_deployment_strategy_max_unavailable")+" and on (namespace, deployment) ("+deploymentsBelow+")")).
		WithRow(dashboard.NewRowBuilder("Drains")).
		WithPanel(timeSeries("Cordoned and drainable nodes", "Cordoned nodes, nodes a drain could empty now, and nodes where a PodDisruptionBudget blocks one.", unitCount, 12,
			q(cordoned, "cordoned"),
			q("sum("+drainable+")", "drainable"),
			q("count("+drainable+" == 0) or vector(0)", "drain blocked"))).
		WithPanel(timeSeries("PDBs at 0 disruptions over time", "PodDisruptionBudgets allowing no eviction, and those whose spec can never allow one.", unitCount, 12,
			q(pdbsAtZero+" or vector(0)", "at 0 disruptions"),
			q("sum("+o.exporter("upgradeguard_pdb_unsatisfiable")+")", "unsatisfiable"))).
		WithPanel(instantTable("Drains blocked by PDB", "Pods per node that the Eviction API would refuse now, the PodDisruptionBudget refusing them and why (budget_exhausted, multiple_pdbs, status_stale).", unitCount, 12, 8,
			[]string{"node", "namespace", "pdb", "reason"},
			map[string]string{"Value #A": "Blocked pods", "node": "Node", "namespace": "Namespace", "pdb": "PDB", "reason": "Reason"},
			o.exporter("upgradeguard_node_drain_blocked_pods"))).
		WithPanel(instantTable("PDBs at 0 disruptions now", "PodDisruptionBudgets allowing no eviction now, with their pod counts.", unitCount, 12, 8,
			[]string{"namespace", "pdb"},
			map[string]string{
				"Value #A": "Disruptions allowed", "Value #B": "Current healthy", "Value #C": "Desired healthy", "Value #D": "Expected pods",
				"namespace": "Namespace", "pdb": "PDB",
			},
			disruptions+" == 0",
			atZero("upgradeguard_pdb_current_healthy"),
			atZero("upgradeguard_pdb_desired_healthy"),
			atZero("upgradeguard_pdb_expected_pods"))).
		WithRow(dashboard.NewRowBuilder("Capacity for new nodes")).
		WithPanel(timeSeries("Free IPs per zone", "Free addresses of the cluster subnets per zone of each AWS account, against the addresses the largest "+
			"Auto Scaling group of the account's surge nodes take at start: below its account's line, a replacement node in that zone cannot start its pods.", unitCount, 8,
			q(zoneIPs, "{{account}} {{zone}} {{role}}"),
			q("max by (account, region) ("+o.exporter("upgradeguard_aws_asg_surge_ips")+")", "{{account}} {{region}} IPs a surge takes at start"))).
		WithPanel(withThresholdLines(timeSeries("Quota headroom after surge (10 lowest)",
			"Share of each AWS quota left once the next node surge is in; below 0 the next node replacement would fail.", unitPercent, 8,
			q("bottomk(10, 1 - "+o.quotaAfterSurge()+")", "{{region}} {{quota_name}}")),
			thresholds("red", step{0, "orange"}, step{0.1, "green"}))).
		WithPanel(timeSeries("Pending pods by namespace", "Pods in phase Pending per namespace (kube-state-metrics).", unitCount, 8,
			q("sum by (namespace) ("+o.ksm("kube_pod_status_phase", `phase="Pending"`)+") > 0", "{{namespace}}")).
			NoValue("0")).
		WithRow(dashboard.NewRowBuilder("Health")).
		WithPanel(withThresholdLines(timeSeries("Heartbeat age vs lease duration (5 oldest)",
			"Kubelet Lease age as a share of its lease duration; at 100% the node controller marks the node NotReady.", unitPercent, 12,
			q("topk(5, "+o.exporter("upgradeguard_node_heartbeat_age_seconds")+" / "+o.exporter("upgradeguard_node_lease_duration_seconds")+")", "{{node}}")),
			thresholds("green", step{0.5, "yellow"}, step{1, "red"}))).
		WithPanel(stacked(timeSeries("Firing alerts over time", "Configured alerts firing, by name and severity.", unitCount, 12,
			q("count by (alertname, severity) ("+firing+")", "{{alertname}} ({{severity}})"))).
			NoValue("0"))
}

// configuredAlertsSelector selects the ALERTS series of the configured
// alerts, or of every alert when none are configured.
func (o Options) configuredAlertsSelector(matchers ...string) string {
	seen := map[string]bool{}
	var names []string
	for _, a := range o.Alerts {
		if !seen[a.Name] {
			seen[a.Name] = true
			names = append(names, regexp.QuoteMeta(a.Name))
		}
	}
	if len(names) > 0 {
		matchers = append([]string{"alertname=~" + strconv.Quote(strings.Join(names, "|"))}, matchers...)
	}
	return o.alerts(matchers...)
}

// fixedColor overrides a series' colour.
func fixedColor(color string) []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"fixedColor": color, "mode": "fixed"}}}
}
