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
// (its policy's alerts.upgrade_in_progress starts from this list). It holds
// this bundle's own such alerts and the kubernetes-mixin ones
// (kubernetes-mixin alerts/system_alerts.libsonnet: KubeVersionMismatch).
var UpgradeInProgressAlerts = []string{
	"KubeVersionMismatch",
	"UpgradeGuardKubeletVersionsMixed",
}
