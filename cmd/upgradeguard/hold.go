package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/hold"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/webserver"
)

// holdFlags are the flags of gate hold besides the gate's.
type holdFlags struct {
	kubeconfig       string
	stopAfter        time.Duration
	nodePools        []string
	nodePoolSelector string
	autoscaler       bool
	autoscalerNodes  string
	nodegroupLabel   string
	refreshGroups    []string
	hookName         string
	createHook       bool
	hookHeartbeat    time.Duration
	noHookGrace      time.Duration
	awsRate          float64
	awsBurst         int
	awsRegion        string
	awsRoleARN       string
	awsEndpoint      string
	leaderElect      bool
	leaseNamespace   string
	leaseName        string
	identity         string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	web              *webserver.Config
	gate             gateFlags
}

// addHoldCommand adds `gate hold` under the gate command.
func addHoldCommand(g *kingpin.CmdClause) subcommand {
	cmd := g.Command("hold", "Run as a controller: evaluate the gate every interval and, while it does not say GO, pause Karpenter NodePools, kops validation (/gate readiness), cluster-autoscaler scale-down and (on STOP) Auto Scaling instance refreshes; restore them after GO.")
	f := &holdFlags{}
	addGateFlags(cmd, &f.gate)
	// The hold gates no single node, and logs rather than prints verdicts.
	cmd.GetFlag("node").Hidden()
	cmd.GetFlag("output").Hidden()
	cmd.Flag("kubeconfig", "Kubeconfig; in a pod the in-cluster configuration is used when empty.").Envar("KUBECONFIG").StringVar(&f.kubeconfig)
	cmd.Flag("stop-after", "Turn a hold into STOP when the gate has not said GO for this long (0: never); only STOP cancels instance refreshes.").Default("1h").DurationVar(&f.stopAfter)
	cmd.Flag("karpenter.nodepool", "Karpenter NodePool to pause (repeatable).").StringsVar(&f.nodePools)
	cmd.Flag("karpenter.nodepool-selector", "Label selector of Karpenter NodePools to pause.").StringVar(&f.nodePoolSelector)
	cmd.Flag("autoscaler.scale-down-disabled", "While held, annotate the nodes of node groups being upgraded with cluster-autoscaler.kubernetes.io/scale-down-disabled.").BoolVar(&f.autoscaler)
	cmd.Flag("autoscaler.node-selector", "Label selector of the nodes whose node groups --autoscaler.scale-down-disabled considers (default: every node).").StringVar(&f.autoscalerNodes)
	cmd.Flag("nodegroup-label", "Node label naming the node group, tried before kops.k8s.io/instancegroup, eks.amazonaws.com/nodegroup and karpenter.sh/nodepool.").StringVar(&f.nodegroupLabel)
	cmd.Flag("aws.instance-refresh-group", "Auto Scaling group whose instance refresh is cancelled on STOP (repeatable).").StringsVar(&f.refreshGroups)
	cmd.Flag("aws.lifecycle-hook-name", "Termination lifecycle hook of the --aws.instance-refresh-group groups that the hold takes charge of: each instance waiting at it is kept waiting while the gate says WAIT, then its node is cordoned, drained and taken out of the load balancers, and the action completed with CONTINUE.").Default(hold.DefaultLifecycleHookName).StringVar(&f.hookName)
	cmd.Flag("aws.create-lifecycle-hook", "Create the termination lifecycle hook on groups that lack it (default result CONTINUE, --aws.lifecycle-hook-heartbeat-timeout).").BoolVar(&f.createHook)
	cmd.Flag("aws.lifecycle-hook-heartbeat-timeout", "Heartbeat timeout of the hook --aws.create-lifecycle-hook creates (30s to 2h): how long a dead controller can delay a termination; the hold heartbeats every third of it.").Default(hold.DefaultHeartbeatTimeout.String()).DurationVar(&f.hookHeartbeat)
	cmd.Flag("aws.no-hook-cancel-after", "Cancel the instance refresh of a group without the termination lifecycle hook once a hold has lasted this long (0: only on STOP); a group with the hook is paused at it and never cancelled.").Default("2m").DurationVar(&f.noHookGrace)
	cmd.Flag("aws.api-rate", "AWS API requests per second gate hold allows itself, retries included (the exporter's budget, internal/awsapi).").Default("5").Float64Var(&f.awsRate)
	cmd.Flag("aws.api-burst", "Burst of --aws.api-rate.").Default("10").IntVar(&f.awsBurst)
	cmd.Flag("aws.region", "AWS region of the Auto Scaling groups.").Envar("AWS_REGION").StringVar(&f.awsRegion)
	cmd.Flag("aws.role-arn", "IAM role to assume; else the default credential chain (IRSA, Pod Identity, instance profile, environment).").StringVar(&f.awsRoleARN)
	cmd.Flag("aws.endpoint-url", "Send AWS requests to this endpoint instead of AWS's (a VPC endpoint proxy, or the test fake).").StringVar(&f.awsEndpoint)
	cmd.Flag("leader-elect", "Apply the verdict only while holding the leader Lease (every replica evaluates and serves /gate).").Default("true").BoolVar(&f.leaderElect)
	cmd.Flag("leader-elect.namespace", "Namespace of the leader Lease.").Envar("POD_NAMESPACE").Default("upgradeguard").StringVar(&f.leaseNamespace)
	cmd.Flag("leader-elect.lease-name", "Name of the leader Lease.").Default("upgradeguard-hold").StringVar(&f.leaseName)
	cmd.Flag("leader-elect.identity", "This replica's identity in the Lease (default: the pod name, else the host name, with a random suffix).").Envar("POD_NAME").StringVar(&f.identity)
	cmd.Flag("leader-elect.lease-duration", "How long a Lease not renewed keeps others from taking over.").Default("15s").DurationVar(&f.leaseDuration)
	cmd.Flag("leader-elect.renew-deadline", "How long the leader keeps trying to renew before it gives up leading.").Default("10s").DurationVar(&f.renewDeadline)
	cmd.Flag("leader-elect.retry-period", "Time between tries to acquire or renew the Lease.").Default("2s").DurationVar(&f.retryPeriod)
	f.web = webserver.AddFlags(cmd, ":9742")
	return subcommand{cmd, f.run}
}

func (f *holdFlags) awsConfig(ctx context.Context, logger *slog.Logger) (aws.Config, error) {
	if f.awsRegion == "" {
		return aws.Config{}, &usageError{"--aws.instance-refresh-group needs --aws.region"}
	}
	cfg, err := loadAWSConfig(ctx, f.awsRegion, f.awsEndpoint, f.awsRoleARN, "upgradeguard-hold", logger)
	if err != nil {
		return cfg, err
	}
	// Every attempt waits for the budget (awsapi, as the exporter's).
	var requests *awsapi.Requests
	cfg.APIOptions = append(cfg.APIOptions, requests.APIOptions(awsapi.NewBudgets(f.awsRate, f.awsBurst).For("hold", f.awsRegion)))
	return cfg, nil
}

func (f *holdFlags) run(ctx context.Context, logger *slog.Logger) error {
	if f.gate.node != "" {
		return &usageError{"gate hold gates no single node: --node is not for it"}
	}
	if f.stopAfter < 0 {
		return &usageError{fmt.Sprintf("--stop-after %s: want 0 or more", f.stopAfter)}
	}
	if err := f.web.Validate(); err != nil {
		return &usageError{err.Error()}
	}
	for flag, sel := range map[string]string{"--karpenter.nodepool-selector": f.nodePoolSelector, "--autoscaler.node-selector": f.autoscalerNodes} {
		if _, err := labels.Parse(sel); err != nil {
			return &usageError{fmt.Sprintf("%s %q: %v", flag, sel, err)}
		}
	}
	if f.autoscalerNodes != "" && !f.autoscaler {
		return &usageError{"--autoscaler.node-selector needs --autoscaler.scale-down-disabled"}
	}
	if len(f.refreshGroups) > 0 && f.awsRegion == "" {
		return &usageError{"--aws.instance-refresh-group needs --aws.region"}
	}
	if f.awsRate <= 0 {
		return &usageError{fmt.Sprintf("--aws.api-rate %v: want more than 0", f.awsRate)}
	}
	if f.noHookGrace < 0 {
		return &usageError{fmt.Sprintf("--aws.no-hook-cancel-after %s: want 0 or more", f.noHookGrace)}
	}
	if f.hookHeartbeat < 30*time.Second || f.hookHeartbeat > 2*time.Hour {
		return &usageError{fmt.Sprintf("--aws.lifecycle-hook-heartbeat-timeout %s: want 30s to 2h (AWS's range)", f.hookHeartbeat)}
	}
	g, policy, err := f.gate.build(logger)
	if err != nil {
		return err
	}
	if len(f.refreshGroups) > 0 && f.createHook && time.Duration(policy.Interval) >= f.hookHeartbeat/3 {
		return &usageError{fmt.Sprintf("the policy's interval %s must be shorter than a third of --aws.lifecycle-hook-heartbeat-timeout %s", time.Duration(policy.Interval), f.hookHeartbeat)}
	}
	restCfg, err := kube.RESTConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	restCfg.UserAgent = "upgradeguard-hold"
	restCfg.QPS, restCfg.Burst = 20, 40
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	var targets []hold.Target
	if len(f.nodePools) > 0 || f.nodePoolSelector != "" {
		dyn, err := dynamic.NewForConfig(restCfg)
		if err != nil {
			return fmt.Errorf("creating the Kubernetes client: %w", err)
		}
		targets = append(targets, &hold.NodePools{Client: dyn, Names: f.nodePools, Selector: f.nodePoolSelector})
	}
	if f.autoscaler {
		targets = append(targets, &hold.Autoscaler{Client: client, Selector: f.autoscalerNodes, GroupLabel: f.nodegroupLabel})
	}
	if len(f.refreshGroups) > 0 {
		cfg, err := f.awsConfig(ctx, logger)
		if err != nil {
			return err
		}
		asc := autoscaling.NewFromConfig(cfg)
		hooks := &hold.LifecycleHooks{
			Client: asc, Kube: client, Groups: f.refreshGroups, HookName: f.hookName, Create: f.createHook, HeartbeatTimeout: f.hookHeartbeat, Interval: time.Duration(policy.Interval),
			TakeOut: roll.TakeOutOptions{
				Provider: &roll.AWS{AutoScaling: asc, ELBv2: elasticloadbalancingv2.NewFromConfig(cfg), ELB: elasticloadbalancing.NewFromConfig(cfg)},
				Logger:   logger,
			},
			Logger: logger,
		}
		// The hooks first: the refreshes ask them which groups are hooked.
		targets = append(targets, hooks, &hold.InstanceRefreshes{Client: asc, Groups: f.refreshGroups, Hooked: hooks.Hooked, NoHookGrace: f.noHookGrace})
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		promcollectors.NewGoCollector(),
		promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("upgradeguard"),
	)
	cfg := hold.Config{
		Gate: g, Consecutive: policy.Consecutive, Interval: time.Duration(policy.Interval), StopAfter: f.stopAfter,
		Targets: targets, Client: client, Registerer: reg, Logger: logger,
		Anchor: corev1.ObjectReference{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Namespace: f.leaseNamespace, Name: f.leaseName},
	}
	if f.leaderElect {
		id := f.identity
		if id == "" {
			id, _ = os.Hostname()
		}
		cfg.LeaderElection = &hold.LeaderElection{
			Client: client, Namespace: f.leaseNamespace, Name: f.leaseName, Identity: id + "_" + utilrand.String(5),
			LeaseDuration: f.leaseDuration, RenewDeadline: f.renewDeadline, RetryPeriod: f.retryPeriod,
		}
	}
	c, err := hold.New(cfg)
	if err != nil {
		return &usageError{err.Error()}
	}

	// /gate and /metrics behind the web config; /gate also on the health
	// listener, beside /healthz and /readyz, which answers without
	// authentication: the kubelet's readiness probe reads it.
	mux := http.NewServeMux()
	mux.Handle("/gate", c.Readiness())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	webserver.HandleHealth(mux, nil)
	health := http.NewServeMux()
	health.Handle("/gate", c.Readiness())
	webserver.HandleHealth(health, nil)
	srv, err := webserver.Start(f.web, mux, health, logger)
	if err != nil {
		return &usageError{err.Error()}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	kinds := []string{hold.ReadinessTarget}
	for _, t := range targets {
		kinds = append(kinds, t.Kind())
	}
	logger.Info("starting gate hold", "targets", kinds, "interval", time.Duration(policy.Interval), "consecutive", policy.Consecutive,
		"stop_after", f.stopAfter, "leader_elect", f.leaderElect)
	runErr := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { runErr <- c.Run(rctx) }()
	select {
	case err := <-srv.Err():
		cancel()
		<-runErr
		return fmt.Errorf("serving /gate and /metrics: %w", err)
	case err := <-runErr:
		// Pauses stay in place: the next controller takes them over.
		return err
	}
}
