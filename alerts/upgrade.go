package alerts

// WatchdogAlert is the name of the bundle's always-firing alert. Its only
// purpose is to prove that rule evaluation is alive end to end (rule files
// loaded, the evaluator running, its ALERTS series reaching the query
// layer): the upgrade gate requires it to be firing before an empty ALERTS
// answer may count as "no alerts". It follows kube-prometheus' Watchdog.
const WatchdogAlert = "UpgradeGuardWatchdog"

// UpgradeInProgressAlerts names the alerts that an ordinary node-replacing
// upgrade causes by itself: they say "an upgrade is in progress", not "stop
// the upgrade". The gate reports them but never blocks on them by default
// (its policy's alerts.upgrade_in_progress starts from this list), and the
// bundle's own alerts among them carry UpgradeInProgressLabel. It is the
// single source of both; docs/runbooks.md explains each entry.
//
// An alert belongs here only when the upgrade alone makes it fire and it
// says nothing else:
//   - KubeVersionMismatch (kubernetes-mixin alerts/system_alerts.libsonnet):
//     more than one minor version among the components' kubernetes_build_info,
//     for 15m: every upgrade that outlasts 15 minutes, by construction.
//   - UpgradeGuardKubeletVersionsMixed: more than one kubelet version for 4h,
//     every long upgrade.
//
// Left off on purpose, because each also fires for a real fault that must
// stop a roll: KubeNodeNotReady, KubeNodeUnreachable, KubeletDown,
// TargetDown (a replaced node goes away within minutes; one that stays
// NotReady or unreachable for 15m is not the upgrade), KubePodNotReady,
// KubeDeploymentReplicasMismatch, KubeStatefulSetReplicasMismatch,
// KubeDaemonSetRolloutStuck (evicted pods come back within minutes; for 15m,
// they do not), KubeCPUOvercommit and KubeMemoryOvercommit (the cluster
// cannot lose a node: exactly when a drain is unsafe), and this bundle's
// UpgradeGuardNodeCordonedTooLong, UpgradeGuardPDBDisruptionsNotAllowed and
// UpgradeGuardCordonedNodeDrainBlocked (a stuck drain). Always-firing
// alerts (WatchdogAlert, kube-prometheus' Watchdog and InfoInhibitor) are
// no sign of an upgrade either; the gate handles them apart.
var UpgradeInProgressAlerts = []string{
	"KubeVersionMismatch",
	"UpgradeGuardKubeletVersionsMixed",
}

// UpgradeInProgressLabel is set to "true" on the bundle's alerting rules
// named in UpgradeInProgressAlerts, so that Alertmanager routes and
// inhibitions, and anyone reading ALERTS, can tell them apart too.
const UpgradeInProgressLabel = "upgradeguard_upgrade_in_progress"

// WatchdogSeverity is the watchdog's severity, kube-prometheus' for its
// Watchdog: no receiver should be paged by it.
const WatchdogSeverity = "none"
