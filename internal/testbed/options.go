package testbed

import (
	"os"
	"time"
)

// Options configure a testbed. The zero value is a control plane with kwok
// and no Prometheus.
type Options struct {
	// Prometheus starts two Prometheus replicas (external labels
	// cluster="testbed", replica="r0"/"r1"), a Thanos sidecar for each and a
	// Thanos Query deduplicating on "replica".
	Prometheus bool
	// StoreGateway also runs a Thanos store gateway (process
	// StoreGatewayName) over a filesystem bucket holding one block per
	// replica, from UploadedFrom to UploadedTo before the start, with the
	// replicas' external labels: the standard layout, where the store
	// gateway announces the label sets of both sidecars. Thanos Query asks
	// it too. Needs Prometheus.
	StoreGateway bool
	// Karpenter runs Karpenter's kwok provider (process "karpenter", built
	// by deps.sh) with its CRDs installed and a KWOKNodeClass
	// KWOKNodeClassName: NodePools (CreateNodePool) then get NodeClaims and
	// kwok Nodes for pending pods. Its metrics: Testbed.KarpenterMetricsURL.
	Karpenter bool
	// EndpointReconciler runs kube-apiserver's endpoint reconciler (the
	// default "lease" type, as every real cluster does), advertising
	// 192.0.2.10 (TEST-NET-1): the reconciler would publish a loopback
	// advertise address in the kubernetes Service's endpoints, which
	// validation rejects, forever. Off: --endpoint-reconciler-type=none.
	EndpointReconciler bool
	// ScrapeInterval is Prometheus' scrape and rule evaluation interval
	// (default 2s).
	ScrapeInterval time.Duration
	// RuleFiles are Prometheus rule files, copied into Dir and loaded by both
	// replicas.
	RuleFiles []string
	// NodeMonitorGracePeriod is kube-controller-manager's
	// --node-monitor-grace-period: how long after the last lease renewal a
	// node is marked Ready=Unknown (default 60s).
	NodeMonitorGracePeriod time.Duration
	// NodeLeaseDurationSeconds is kwok's --node-lease-duration-seconds
	// (default 40). kwok renews each node's Lease about every quarter of it.
	NodeLeaseDurationSeconds int
	// ControllerQPS raises the client rate limit of kube-controller-manager
	// (--kube-api-qps, with --kube-api-burst twice it) and of
	// kube-scheduler (the same flags, which it honours without a --config
	// file), and lets kwok play pod and node stages and renew Leases with
	// KwokParallelism workers, for filling a large cluster: at the
	// defaults (20 and 50 requests/s, 4 kwok workers) creating 40,000 pods
	// through Deployments takes most of an hour. 0 keeps the defaults.
	ControllerQPS float32
	// ControllerSyncs is kube-controller-manager's
	// --concurrent-deployment-syncs and --concurrent-replicaset-syncs
	// (default 5 each). Creating thousands of Deployments at once, their
	// ReplicaSets and pods come out at the pace of these workers, each
	// waiting on the API server's answers: on a loaded 2-core machine 5
	// workers create about 4 ReplicaSets a second.
	ControllerSyncs int
	// LightScheduling makes kube-scheduler cheaper per pod on many nodes:
	// it scores 10% of the feasible nodes (percentageOfNodesToScore; the
	// default is adaptive, 34% at 2,000 nodes) and drops PodTopologySpread's
	// scoring, whose PreScore walks every node for every pod (its
	// podtopologyspread/scoring.go): at 2,000 nodes on a loaded 2-core
	// machine that was about half of the ~50 ms a pod took, and the 40,000
	// pods waited half an hour for the scheduler. NodeResourcesFit's
	// LeastAllocated scoring still spreads a Deployment's pods over the
	// emptiest nodes. The scheduler then runs from a --config file.
	LightScheduling bool
	// KwokParallelism is the number of workers kwok plays pod stages, node
	// stages and Lease renewals with (its podPlayStageParallelism,
	// nodePlayStageParallelism and nodeLeaseParallelism; default 4, and
	// 16 with ControllerQPS).
	KwokParallelism int
	// Dir holds the state, configuration and logs. Default: a new temporary
	// directory, removed by Stop unless KeepDir. A given Dir is never removed.
	Dir string
	// KeepDir keeps the temporary Dir after Stop (also set by the environment
	// variable UPGRADEGUARD_TESTBED_KEEP=1).
	KeepDir bool
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = 2 * time.Second
	}
	if o.NodeMonitorGracePeriod <= 0 {
		o.NodeMonitorGracePeriod = 60 * time.Second
	}
	if o.NodeLeaseDurationSeconds <= 0 {
		o.NodeLeaseDurationSeconds = 40
	}
	if o.KwokParallelism <= 0 && o.ControllerQPS > 0 {
		o.KwokParallelism = 16
	}
	if os.Getenv("UPGRADEGUARD_TESTBED_KEEP") == "1" {
		o.KeepDir = true
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}
