// Package exporter is the `upgradeguard exporter` command: it wires the
// Kubernetes informers, the enabled collectors and the HTTP listener.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/awsquota"
	"github.com/upgradeguard/upgradeguard/collectors/cni"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/collectors/pdb"
	"github.com/upgradeguard/upgradeguard/collectors/workloads"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
	"github.com/upgradeguard/upgradeguard/internal/webserver"
)

// DefaultListenAddress is the exporter's default port.
const DefaultListenAddress = ":9741"

// Config holds the exporter's flags.
type Config struct {
	// Web is where /metrics is served and how it is protected
	// (--web.listen-address, --web.config.file), and the unauthenticated
	// health listener (--web.health-address).
	Web *webserver.Config
	// EnablePprof serves net/http/pprof's profiles under /debug/pprof/ on
	// the main listener (--web.enable-pprof), behind the web config.
	EnablePprof bool
	Kubeconfig  string
	Cluster     string
	SyncTimeout time.Duration
	KubeQPS     float32
	KubeBurst   int
	// Shard is the part of the nodes served (--shard, --total-shards).
	Shard kube.Shard
	Nodes nodes.Options
	AWS   *AWSConfig
	CNI   struct {
		SubnetIDs                          []string
		PrefixDelegation, CustomNetworking bool
		Interval                           time.Duration
		// set tells which VPC CNI setting flags were given, by name:
		// those override the aws-node DaemonSet.
		set map[string]*bool
	}
	AWSQuota struct {
		QuotaInterval, UsageInterval  time.Duration
		ASGNames                      []string
		SurgeNodes, ENIsPerNode       int
		WarmIPTarget, MinimumIPTarget int
		WarmPrefixTarget              int
	}
	enabled map[string]*bool
}

// collectorDefaults lists the collector families and whether they are on by default.
var collectorDefaults = map[string]bool{
	"nodes":     true,
	"pdb":       true,
	"workloads": true,
	// The AWS collectors need AWS credentials and --aws.region.
	"cni":      false,
	"awsquota": false,
}

// AddFlags registers the exporter's flags on cmd.
func AddFlags(cmd *kingpin.CmdClause) *Config {
	c := &Config{enabled: map[string]*bool{}}
	c.CNI.set = map[string]*bool{}
	set := func(name string) *bool {
		b := new(bool)
		c.CNI.set[name] = b
		return b
	}
	c.Web = webserver.AddFlags(cmd, DefaultListenAddress)
	cmd.Flag("web.enable-pprof", "Serve Go's runtime profiles (net/http/pprof) under /debug/pprof/ on --web.listen-address, behind --web.config.file like /metrics; never on the health listener.").
		BoolVar(&c.EnablePprof)
	cmd.Flag("kubeconfig", "Path to a kubeconfig file; in a pod the in-cluster configuration is used when this is empty.").
		Envar("KUBECONFIG").StringVar(&c.Kubeconfig)
	cmd.Flag("cluster", "Cluster name to attach as a 'cluster' label to every upgradeguard metric; empty attaches none (Prometheus usually adds it as an external label).").
		StringVar(&c.Cluster)
	cmd.Flag("kube.sync-timeout", "How long to wait at start for the informers' initial lists before giving up with an error.").
		Default("2m").DurationVar(&c.SyncTimeout)
	cmd.Flag("kube.qps", "Queries per second to the API server (client-side rate limit).").
		Default("20").Float32Var(&c.KubeQPS)
	cmd.Flag("kube.burst", "Burst of queries to the API server above kube.qps.").
		Default("40").IntVar(&c.KubeBurst)
	cmd.Flag("shard", "This exporter's shard, from 0 to --total-shards minus one: it keeps and serves only the nodes hashed to it (with their pods and Leases); shard 0 also serves the cluster-wide series (PodDisruptionBudgets, workloads).").
		Default("0").IntVar(&c.Shard.Index)
	cmd.Flag("total-shards", "Exporters the cluster's nodes are split across; 1 serves them all.").
		Default("1").IntVar(&c.Shard.Total)
	cmd.Flag("collector.nodes.nodegroup-label", "Node label holding the node group, tried before the kops and EKS labels.").
		StringVar(&c.Nodes.NodegroupLabel)
	c.AWS = addAWSFlags(cmd)
	cmd.Flag("collector.cni.subnet", "A subnet of the cluster (repeatable); without it, the subnets tagged kubernetes.io/cluster/<aws.cluster-name>, else the subnets of the nodes' instances.").
		StringsVar(&c.CNI.SubnetIDs)
	cmd.Flag("collector.cni.prefix-delegation", "Override the aws-node DaemonSet's ENABLE_PREFIX_DELEGATION (each secondary address slot holds a /28 prefix); unset: the DaemonSet's.").
		IsSetByUser(set(cni.EnvPrefixDelegation)).BoolVar(&c.CNI.PrefixDelegation)
	cmd.Flag("collector.cni.custom-networking", "Override the aws-node DaemonSet's AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG (pods take addresses from the ENIConfigs' subnets; the primary ENI holds none); unset: the DaemonSet's.").
		IsSetByUser(set(cni.EnvCustomNetworking)).BoolVar(&c.CNI.CustomNetworking)
	cmd.Flag("collector.cni.interval", "How often the cni collector asks AWS for subnets and instance types.").
		Default("5m").DurationVar(&c.CNI.Interval)
	cmd.Flag("collector.awsquota.quota-interval", "How often the awsquota collector reads quota values from Service Quotas.").
		Default("1h").DurationVar(&c.AWSQuota.QuotaInterval)
	cmd.Flag("collector.awsquota.usage-interval", "How often the awsquota collector computes usage and surge demand from describe calls.").
		Default("5m").DurationVar(&c.AWSQuota.UsageInterval)
	cmd.Flag("collector.awsquota.asg", "An Auto Scaling group of the cluster (repeatable), besides those tagged kubernetes.io/cluster/<aws.cluster-name>.").
		StringsVar(&c.AWSQuota.ASGNames)
	cmd.Flag("collector.awsquota.surge-nodes", "Nodes a group replaces at a time during an upgrade, for the surge demand.").
		Default("1").IntVar(&c.AWSQuota.SurgeNodes)
	cmd.Flag("collector.awsquota.enis-per-node", "Override the ENIs the VPC CNI attaches to a new node at start, 1 plus its WARM_ENI_TARGET; unset: from the aws-node DaemonSet (ipamd's default WARM_ENI_TARGET 1).").
		IsSetByUser(set(cni.EnvWarmENITarget)).IntVar(&c.AWSQuota.ENIsPerNode)
	cmd.Flag("collector.awsquota.warm-ip-target", "Override the VPC CNI's WARM_IP_TARGET (0: unset); when set (or minimum-ip-target), it replaces the warm ENI behaviour; unset: the aws-node DaemonSet's.").
		IsSetByUser(set(cni.EnvWarmIPTarget)).IntVar(&c.AWSQuota.WarmIPTarget)
	cmd.Flag("collector.awsquota.minimum-ip-target", "Override the VPC CNI's MINIMUM_IP_TARGET (0: unset); unset: the aws-node DaemonSet's.").
		IsSetByUser(set(cni.EnvMinimumIPTarget)).IntVar(&c.AWSQuota.MinimumIPTarget)
	cmd.Flag("collector.awsquota.warm-prefix-target", "Override the VPC CNI's WARM_PREFIX_TARGET, used with prefix delegation; unset: the aws-node DaemonSet's.").
		IsSetByUser(set(cni.EnvWarmPrefixTarget)).IntVar(&c.AWSQuota.WarmPrefixTarget)
	names := make([]string, 0, len(collectorDefaults))
	for n := range collectorDefaults {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		def := "false"
		if collectorDefaults[name] {
			def = "true"
		}
		c.enabled[name] = cmd.Flag("collector."+name,
			fmt.Sprintf("Enable the %s collector (default: %s; --no-collector.%s disables it).", name, map[bool]string{true: "enabled", false: "disabled"}[collectorDefaults[name]], name)).
			Default(def).Bool()
	}
	return c
}

// validateShard checks --shard and --total-shards, and that no collector
// that sums over every node (cni's zones and subnets, awsquota's surge
// demand) runs on a shard that sees only some of them.
func (c *Config) validateShard() error {
	if err := c.Shard.Validate(); err != nil {
		return err
	}
	if !c.Shard.Sharded() {
		return nil
	}
	for _, name := range []string{"cni", "awsquota"} {
		if on := c.enabled[name]; on != nil && *on {
			return fmt.Errorf("--collector.%s with --total-shards %d: it sums over every node, so it runs only in an unsharded exporter (--total-shards 1)", name, c.Shard.Total)
		}
	}
	return nil
}

// UsageError is a problem with the command line or a file it names; the
// process exits with status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Run serves the exporter until ctx ends. It fails when the informers do
// not sync within the sync timeout.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	if err := cfg.Web.Validate(); err != nil {
		return UsageError{err}
	}
	if err := cfg.validateShard(); err != nil {
		return UsageError{err}
	}
	setGCPercent(logger)
	restCfg, err := kube.RESTConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = cfg.KubeQPS, cfg.KubeBurst
	restCfg.UserAgent = "upgradeguard-exporter"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client for %s: %w", restCfg.Host, err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		promcollectors.NewGoCollector(),
		promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("upgradeguard"),
	)
	var r prometheus.Registerer = reg
	if cfg.Cluster != "" {
		r = prometheus.WrapRegistererWith(prometheus.Labels{"cluster": cfg.Cluster}, reg)
	}

	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes dynamic client for %s: %w", restCfg.Host, err)
	}
	informers := kube.NewInformers(client, kube.Options{NodeLabels: cfg.Nodes.NodeLabels(), Shard: cfg.Shard}, logger)
	set, refreshers, err := newSet(ctx, cfg, informers, dyn, r, logger)
	if err != nil {
		return err
	}
	if err := r.Register(set); err != nil {
		return fmt.Errorf("registering collectors: %w", err)
	}
	if c := shardCollector(cfg); c != nil {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("registering %s: %w", ShardsMetric, err)
		}
	}

	handler := Handler(reg, set.Writers(), informers.Synced, logger)
	if cfg.EnablePprof {
		handler = withPprof(handler)
	}
	srv, err := webserver.Start(cfg.Web, handler, webserver.HealthHandler(syncedErr(informers.Synced)), logger)
	if err != nil {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	informers.Start(ctx)
	logger.Info("waiting for informers to sync", "api_server", restCfg.Host, "timeout", cfg.SyncTimeout, "collectors", set.Names())
	begin := time.Now()
	sctx, cancel := context.WithTimeout(ctx, cfg.SyncTimeout)
	err = informers.WaitForSync(sctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("API server %s: %w", restCfg.Host, err)
	}
	logger.Info("informers synced, ready", "duration_seconds", time.Since(begin).Seconds())
	if n, err := releaseStartupPages(); err != nil {
		logger.Debug("could not release the start-up pages of the executable", "err", err)
	} else {
		logger.Debug("released the start-up pages of the executable", "bytes", n)
	}
	logger.Debug("returned the free heap of the initial lists", "bytes", returnFreeHeap())
	// AWS is only called from these background loops, never on a scrape.
	for _, rf := range refreshers {
		go rf.Run(ctx, logger)
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-srv.Err():
		return fmt.Errorf("serving HTTP: %w", err)
	}
}

// newSet builds the enabled collectors and the background refreshers of the
// AWS ones.
func newSet(ctx context.Context, cfg *Config, informers *kube.Informers, dyn dynamic.Interface, reg prometheus.Registerer, logger *slog.Logger) (*collectors.Set, []*awsapi.Refresher, error) {
	enabled := map[string]collectors.Collector{}
	if *cfg.enabled["nodes"] {
		opts := cfg.Nodes
		if cfg.Cluster != "" {
			// Its series are rendered, not wrapped by the registry as the Set's are.
			opts.ConstLabels = metricstore.ConstLabels(map[string]string{"cluster": cfg.Cluster})
		}
		c, err := nodes.New(informers.Nodes(), informers.NodeLeases(), opts)
		if err != nil {
			return nil, nil, fmt.Errorf("nodes collector: %w", err)
		}
		enabled["nodes"] = c
	}
	if *cfg.enabled["pdb"] {
		var opts []pdb.Option
		if !cfg.Shard.First() {
			opts = append(opts, pdb.NodesOnly())
		}
		if cfg.Cluster != "" {
			opts = append(opts, pdb.ConstLabels(metricstore.ConstLabels(map[string]string{"cluster": cfg.Cluster})))
		}
		enabled["pdb"] = pdb.New(informers.Nodes(), informers.Pods(), informers.PodDisruptionBudgets(), opts...)
	}
	// Workloads and Services are cluster-wide: shard 0 serves them.
	if *cfg.enabled["workloads"] && cfg.Shard.First() {
		var opts workloads.Options
		if cfg.Cluster != "" {
			opts.ConstLabels = metricstore.ConstLabels(map[string]string{"cluster": cfg.Cluster})
		}
		enabled["workloads"] = workloads.New(informers.EndpointSlices(), informers.Deployments(), informers.StatefulSets(), informers.DaemonSets(), opts)
	}
	var refreshers []*awsapi.Refresher
	if *cfg.enabled["cni"] || *cfg.enabled["awsquota"] {
		if err := cfg.cniOverrides().Validate(); err != nil {
			return nil, nil, UsageError{err}
		}
		requests, err := awsapi.NewRequests(reg)
		if err != nil {
			return nil, nil, err
		}
		targets, err := awsTargets(ctx, cfg.AWS, awsapi.NewBudgets(cfg.AWS.APIRate, cfg.AWS.APIBurst), requests, logger)
		if err != nil {
			return nil, nil, err
		}
		var cniMulti, quotaMulti collectors.Multi
		// The VPC CNI's settings: the aws-node DaemonSet's, with the flags
		// given as overrides.
		awsNode, overrides := informers.AWSNode(), cfg.cniOverrides()
		var eniConfigs *kube.Informer
		if *cfg.enabled["cni"] {
			eniConfigs = informers.ENIConfigs(dyn)
		}
		for _, t := range targets {
			if *cfg.enabled["cni"] {
				c := cni.New(cni.Options{
					EC2: ec2.NewFromConfig(t.Config), Account: t.Account, Region: t.Region,
					Nodes: informers.Nodes(), Pods: informers.Pods(), AWSNode: awsNode, ENIConfigs: eniConfigs,
					SubnetIDs: cfg.CNI.SubnetIDs, ClusterName: cfg.AWS.clusterName(cfg.Cluster),
					Overrides: overrides,
					Interval:  cfg.CNI.Interval, Logger: logger.With("collector", "cni", "account", t.Account),
				})
				cniMulti = append(cniMulti, c)
				refreshers = append(refreshers, c.Refreshers()...)
			}
			if *cfg.enabled["awsquota"] {
				c := awsquota.New(awsquota.Options{
					Account: t.Account,
					Regions: []awsquota.Region{{Name: t.Region, Clients: awsquota.Clients{
						EC2:           ec2.NewFromConfig(t.Config),
						AutoScaling:   autoscaling.NewFromConfig(t.Config),
						ELBv2:         elasticloadbalancingv2.NewFromConfig(t.Config),
						ELB:           elasticloadbalancing.NewFromConfig(t.Config),
						ServiceQuotas: servicequotas.NewFromConfig(t.Config),
					}}},
					QuotaInterval: cfg.AWSQuota.QuotaInterval, UsageInterval: cfg.AWSQuota.UsageInterval,
					ClusterName: cfg.AWS.clusterName(cfg.Cluster), ASGNames: cfg.AWSQuota.ASGNames,
					SurgeNodes: cfg.AWSQuota.SurgeNodes,
					CNIFunc: func() awsquota.CNISettings {
						s := cni.CurrentSettings(awsNode, overrides)
						return awsquota.CNISettings{
							ENIs: 1 + s.WarmENITarget, WarmIPTarget: s.WarmIPTarget, MinimumIPTarget: s.MinimumIPTarget,
							PrefixDelegation: s.PrefixDelegation, WarmPrefixTarget: s.WarmPrefixTarget, CustomNetworking: s.CustomNetworking,
						}
					},
					Logger: logger.With("collector", "awsquota", "account", t.Account),
				})
				quotaMulti = append(quotaMulti, c)
				refreshers = append(refreshers, c.Refreshers()...)
			}
		}
		if len(cniMulti) > 0 {
			enabled["cni"] = cniMulti
		}
		if len(quotaMulti) > 0 {
			enabled["awsquota"] = quotaMulti
		}
	}
	if len(enabled) == 0 {
		return nil, nil, UsageError{errors.New("every collector is disabled; enable at least one --collector.<name>")}
	}
	return collectors.NewSet(enabled, logger), refreshers, nil
}

// syncedErr turns the informers' sync state into /readyz's answer.
func syncedErr(synced func() bool) func() error {
	return func() error {
		if !synced() {
			return errors.New("informers not synced yet")
		}
		return nil
	}
}

// cniOverrides are the VPC CNI setting flags given on the command line.
func (c *Config) cniOverrides() cni.Overrides {
	var o cni.Overrides
	given := func(name string) bool { b := c.CNI.set[name]; return b != nil && *b }
	if given(cni.EnvPrefixDelegation) {
		o.PrefixDelegation = &c.CNI.PrefixDelegation
	}
	if given(cni.EnvCustomNetworking) {
		o.CustomNetworking = &c.CNI.CustomNetworking
	}
	if given(cni.EnvWarmENITarget) {
		v := c.AWSQuota.ENIsPerNode - 1 // below 1 fails Validate
		o.WarmENITarget = &v
	}
	if given(cni.EnvWarmIPTarget) {
		o.WarmIPTarget = &c.AWSQuota.WarmIPTarget
	}
	if given(cni.EnvMinimumIPTarget) {
		o.MinimumIPTarget = &c.AWSQuota.MinimumIPTarget
	}
	if given(cni.EnvWarmPrefixTarget) {
		o.WarmPrefixTarget = &c.AWSQuota.WarmPrefixTarget
	}
	return o
}

// Handler serves /metrics, /healthz (the process is alive), /readyz (the
// informers have synced) and a landing page. With a web config, all of them
// need its credentials; the health listener (--web.health-address) serves
// /healthz and /readyz without. /metrics writes the registry's families,
// then the writers' families rendered at watch time (metricstore.Handler).
func Handler(reg *prometheus.Registry, writers []metricstore.Writer, ready func() bool, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricstore.Handler(reg, writers, logger))
	webserver.HandleHealth(mux, syncedErr(ready))
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "upgradeguard exporter",
		Description: "Node readiness, PDB drain headroom, workload availability and AWS limits for safe Kubernetes upgrades",
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/healthz", Text: "Health"},
			{Address: "/readyz", Text: "Readiness"},
		},
	})
	if err == nil {
		mux.Handle("/", landing)
	}
	return mux
}
