package testbed

import "fmt"

// The control-plane flags and configuration files of the options for filling
// a large cluster fast (Options.ControllerQPS, ControllerSyncs,
// LightScheduling, KwokParallelism).

// clientRateFlags are the client rate limit flags of kube-controller-manager
// and kube-scheduler for Options.ControllerQPS (none without it).
func (o Options) clientRateFlags() []string {
	if o.ControllerQPS <= 0 {
		return nil
	}
	return []string{
		fmt.Sprintf("--kube-api-qps=%g", o.ControllerQPS),
		fmt.Sprintf("--kube-api-burst=%d", int(2*o.ControllerQPS)),
	}
}

// schedulerConfig is the KubeSchedulerConfiguration of
// Options.LightScheduling (k8s.io/kube-scheduler config/v1 types.go):
// the client connection of the flags otherwise given, 10% of the nodes
// scored, and no PodTopologySpread scoring in the default profile.
func (o Options) schedulerConfig(kubeconfig string) []byte {
	qps := ""
	if o.ControllerQPS > 0 {
		qps = fmt.Sprintf("\n  qps: %g\n  burst: %d", o.ControllerQPS, int(2*o.ControllerQPS))
	}
	return fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q%s
leaderElection:
  leaderElect: false
enableProfiling: false
percentageOfNodesToScore: 10
profiles:
- schedulerName: default-scheduler
  plugins:
    preScore:
      disabled:
      - name: PodTopologySpread
    score:
      disabled:
      - name: PodTopologySpread
`, kubeconfig, qps)
}

// syncFlags are kube-controller-manager's worker counts for
// Options.ControllerSyncs (none without it).
func (o Options) syncFlags() []string {
	if o.ControllerSyncs <= 0 {
		return nil
	}
	return []string{
		fmt.Sprintf("--concurrent-deployment-syncs=%d", o.ControllerSyncs),
		fmt.Sprintf("--concurrent-replicaset-syncs=%d", o.ControllerSyncs),
	}
}

// kwokOptions is a KwokConfiguration document (sigs.k8s.io/kwok
// pkg/apis/config/v1alpha1 kwok_configuration_types.go) setting kwok's
// worker counts; kwok reads it beside the stages from its --config files.
func kwokOptions(parallelism int) []byte {
	return fmt.Appendf(nil, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: %[1]d
  nodePlayStageParallelism: %[1]d
  nodeLeaseParallelism: %[1]d
`, parallelism)
}
