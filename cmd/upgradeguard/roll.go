package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

// rollFlags are the flags of the roll command besides the gate's.
type rollFlags struct {
	kubeconfig     string
	nodegroup      string
	nodegroupLabel string
	selector       string
	onlyOutdated   bool
	kubeletVersion string
	order          string
	unhealthyFirst bool
	maxUnavailable int
	canary         int
	canarySoak     time.Duration
	unreachGrace   time.Duration
	surge          bool
	drainTimeout   time.Duration
	lbTimeout      time.Duration
	lbWait         time.Duration
	nodeTimeout    time.Duration
	gateTimeout    time.Duration
	forceUnmanaged bool
	forceLocal     bool
	dryRun         bool
	reset          bool
	metricsAddress string
	metricsWeb     metricsWebFlags
	report         string
	sampleInterval time.Duration
	provider       string
	awsRegion      string
	awsRoleARN     string
	awsEndpoint    string
	awsCluster     string
}

func addRollFlags(cmd *kingpin.CmdClause, f *rollFlags) {
	cmd.Flag("kubeconfig", "Kubeconfig; in a pod the in-cluster configuration is used when empty.").Envar("KUBECONFIG").StringVar(&f.kubeconfig)
	cmd.Flag("nodegroup", "Node group to roll: the nodes whose --nodegroup-label (else kops.k8s.io/instancegroup, else eks.amazonaws.com/nodegroup) has this value.").StringVar(&f.nodegroup)
	cmd.Flag("nodegroup-label", "Node label naming the node group.").StringVar(&f.nodegroupLabel)
	cmd.Flag("selector", "Label selector of the nodes to roll (with --nodegroup, both must match).").Short('l').StringVar(&f.selector)
	cmd.Flag("only-outdated", "Replace only nodes launched from another launch template version (or configuration) than their group's current one, or whose kubelet is older than --kubelet-version.").BoolVar(&f.onlyOutdated)
	cmd.Flag("kubelet-version", "Kubelet version an up-to-date node has (default: the newest among the selected nodes).").StringVar(&f.kubeletVersion)
	cmd.Flag("order", "Order of the nodes: oldest (creation time), name, or zone (oldest first, zones in turn).").Default(roll.OrderOldest).EnumVar(&f.order, roll.Orders...)
	cmd.Flag("unhealthy-first", "Replace the nodes that are not Ready (a dead kubelet) before the others, in --order among themselves.").BoolVar(&f.unhealthyFirst)
	cmd.Flag("max-unavailable", "Nodes cordoned, drained or being replaced at once.").Default("1").IntVar(&f.maxUnavailable)
	cmd.Flag("canary", "Replace this many nodes first, then hold for --canary-soak while the gate keeps evaluating and the new nodes are judged (their pods Ready, none crash-looping or restarting, the nodes Ready); an evaluation that does not pass, or a finding on a new node, stops the roll.").Default("0").IntVar(&f.canary)
	cmd.Flag("canary-soak", "How long to hold after the canary nodes (needs --canary).").Default("0s").DurationVar(&f.canarySoak)
	cmd.Flag("unreachable-pod-grace", "On a node whose kubelet is unreachable (Ready Unknown), an evicted pod counts as gone this long after its deletion deadline, as kubectl drain --skip-wait-for-delete-timeout (no kubelet will confirm it).").Default("1m").DurationVar(&f.unreachGrace)
	cmd.Flag("surge", "Raise the group's desired capacity by one and wait for the new node before draining each node, then terminate the old instance decrementing the capacity (needs max size > desired).").BoolVar(&f.surge)
	cmd.Flag("drain-timeout", "Give up draining a node after this long (the node is uncordoned, not terminated, and the roll stops).").Default("15m").DurationVar(&f.drainTimeout)
	cmd.Flag("lb-deregistration-timeout", "Before terminating a node's instance, wait at most this long for the Services' load balancers (ELBv2 target groups, classic ELBs, read with DescribeTargetHealth and DescribeInstanceHealth) to let it go after the node is labelled node.kubernetes.io/exclude-from-external-load-balancers; past it the node is put back (uncordoned, label removed), not terminated, and the roll stops.").Default("15m").DurationVar(&f.lbTimeout)
	cmd.Flag("lb-deregistration-wait", "When the load balancers cannot be read (access denied), wait this long after labelling the node instead (ELBv2's default deregistration delay of 300s plus a minute).").Default("6m").DurationVar(&f.lbWait)
	cmd.Flag("node-timeout", "Give up waiting for a replacement node to be Ready and the evicted workloads to be Running again after this long.").Default("20m").DurationVar(&f.nodeTimeout)
	cmd.Flag("gate-timeout", "Stop the roll when the gate has not said GO for this long (0: wait as long as it takes).").Default("1h").DurationVar(&f.gateTimeout)
	cmd.Flag("force-unmanaged", "Evict pods that no controller recreates (they are gone for good).").BoolVar(&f.forceUnmanaged)
	cmd.Flag("force-local-storage", "Evict pods with emptyDir volumes (their data is lost).").BoolVar(&f.forceLocal)
	cmd.Flag("dry-run", "Print the plan and what each drain would do; change nothing.").BoolVar(&f.dryRun)
	cmd.Flag("reset", "Forget a roll in progress on the selected nodes (remove its annotations, uncordon the nodes it cordoned and did not terminate, resume the Auto Scaling processes it suspended) and exit.").BoolVar(&f.reset)
	cmd.Flag("metrics-address", "Serve the roll's progress metrics on this address (/metrics).").StringVar(&f.metricsAddress)
	f.metricsWeb.add(cmd)
	cmd.Flag("report", "Write the downtime report here as JSON, and its Markdown summary beside it (FILE without .json, plus .md): per Service the fewest ready endpoints and the seconds with none, per probe of the gate policy the failed requests, per node the step timings.").StringVar(&f.report)
	cmd.Flag("sample-interval", "How often the downtime report samples every Service's ready endpoints and requests every probe of the gate policy.").Default("5s").DurationVar(&f.sampleInterval)
	cmd.Flag("provider", "How nodes are replaced: aws (EC2 Auto Scaling groups).").Default("aws").EnumVar(&f.provider, "aws")
	cmd.Flag("aws.region", "AWS region of the node groups.").Envar("AWS_REGION").StringVar(&f.awsRegion)
	cmd.Flag("aws.role-arn", "IAM role to assume; else the default credential chain (IRSA, Pod Identity, instance profile, environment).").StringVar(&f.awsRoleARN)
	cmd.Flag("aws.endpoint-url", "Send AWS requests to this endpoint instead of AWS's (a VPC endpoint proxy, or the test fake).").StringVar(&f.awsEndpoint)
	cmd.Flag("aws.cluster-name", "Only touch Auto Scaling groups tagged kubernetes.io/cluster/<name> (what deploy/roll/iam-policy.json allows).").StringVar(&f.awsCluster)
}

func (f *rollFlags) awsProvider(ctx context.Context, logger *slog.Logger) (*roll.AWS, error) {
	if f.awsRegion == "" {
		return nil, &usageError{"the aws provider needs --aws.region"}
	}
	cfg, err := loadAWSConfig(ctx, f.awsRegion, f.awsEndpoint, f.awsRoleARN, "upgradeguard-roll", logger)
	if err != nil {
		return nil, err
	}
	return &roll.AWS{AutoScaling: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg),
		ELBv2: elasticloadbalancingv2.NewFromConfig(cfg), ELB: elasticloadbalancing.NewFromConfig(cfg), ClusterName: f.awsCluster}, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) []subcommand {
		cmd := app.Command("roll", "Replace the nodes of a node group one at a time behind the gate: gate, cordon, drain, replace, wait, next.")
		var rf rollFlags
		addRollFlags(cmd, &rf)
		var gf gateFlags
		addGateFlags(cmd, &gf)
		// The roll picks its nodes and prints progress, not verdicts.
		cmd.GetFlag("node").Hidden()
		cmd.GetFlag("output").Hidden()

		run := func(ctx context.Context, logger *slog.Logger) error {
			if gf.node != "" {
				return &usageError{"roll picks its nodes itself: use --nodegroup or --selector, not --node"}
			}
			if rf.nodegroup == "" && rf.selector == "" {
				return &usageError{"roll needs --nodegroup or --selector"}
			}
			if rf.maxUnavailable < 1 {
				return &usageError{fmt.Sprintf("--max-unavailable %d: want at least 1", rf.maxUnavailable)}
			}
			if rf.gateTimeout < 0 || rf.drainTimeout <= 0 || rf.lbTimeout <= 0 || rf.lbWait <= 0 || rf.nodeTimeout <= 0 || rf.unreachGrace <= 0 {
				return &usageError{"--gate-timeout must be 0 or more, --drain-timeout, --lb-deregistration-timeout, --lb-deregistration-wait, --node-timeout and --unreachable-pod-grace more than 0"}
			}
			if rf.sampleInterval <= 0 {
				return &usageError{fmt.Sprintf("--sample-interval %s: want more than 0", rf.sampleInterval)}
			}
			if rf.canary < 0 || rf.canarySoak < 0 || rf.canarySoak > 0 && rf.canary == 0 {
				return &usageError{fmt.Sprintf("--canary %d --canary-soak %s: a soak needs canary nodes (--canary 1 or more), neither negative", rf.canary, rf.canarySoak)}
			}
			metricsWeb, err := rf.metricsWeb.config(rf.metricsAddress)
			if err != nil {
				return err
			}
			// What the roll is told to evict anyway, the gate's drain check
			// accepts: otherwise the roll would wait for ever on a node
			// with emptyDir or unmanaged pods.
			g, policy, err := gf.build(logger, acceptForced(rf.forceLocal, rf.forceUnmanaged))
			if err != nil {
				return err
			}
			wait := gate.WaitOptions{Timeout: rf.gateTimeout, Consecutive: policy.Consecutive, Interval: time.Duration(policy.Interval)}
			restCfg, err := kube.RESTConfig(rf.kubeconfig)
			if err != nil {
				return err
			}
			restCfg.UserAgent = "upgradeguard-roll"
			// client-go's default (5/s) would make each node's steps wait
			// on the client's own rate limiter.
			restCfg.QPS, restCfg.Burst = 20, 40
			client, err := kubernetes.NewForConfig(restCfg)
			if err != nil {
				return fmt.Errorf("creating the Kubernetes client: %w", err)
			}
			provider, err := rf.awsProvider(ctx, logger)
			if err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			if rf.metricsAddress != "" {
				stop, err := serveMetrics(ctx, metricsWeb, reg, logger)
				if err != nil {
					return err
				}
				defer stop()
			}
			res, err := roll.Run(ctx, roll.Config{
				Client: client, Provider: provider, Gate: g, GateWait: wait,
				Selection: roll.Selection{
					NodeGroup: rf.nodegroup, NodeGroupLabel: rf.nodegroupLabel, Selector: rf.selector,
					OnlyOutdated: rf.onlyOutdated, KubeletVersion: rf.kubeletVersion, Order: rf.order, UnhealthyFirst: rf.unhealthyFirst,
				},
				Deregistration: roll.DeregistrationOptions{Timeout: rf.lbTimeout, Wait: rf.lbWait},
				Drain: roll.DrainOptions{
					ForceUnmanaged: rf.forceUnmanaged, ForceLocalStorage: rf.forceLocal, Timeout: rf.drainTimeout, UnreachableGrace: rf.unreachGrace,
				},
				MaxUnavailable: rf.maxUnavailable, Surge: rf.surge, NodeTimeout: rf.nodeTimeout, Canary: rf.canary, CanarySoak: rf.canarySoak,
				DryRun: rf.dryRun, Reset: rf.reset, Out: os.Stdout, TTY: isTerminal(os.Stdout),
				Registerer: reg, Logger: logger,
				Downtime: &roll.DowntimeOptions{Probes: policy.Probes, Interval: rf.sampleInterval},
			})
			if res != nil && res.Downtime != nil && rf.report != "" {
				if werr := writeReport(rf.report, res.Downtime); werr != nil {
					err = errors.Join(err, werr)
				}
			}
			if err != nil || !rf.dryRun || res == nil || len(res.Plan.Nodes) == 0 {
				return err
			}
			// A dry run also shows what the gate says now about the first node.
			first := res.Plan.Nodes[0].Name()
			e, err := g.Evaluate(ctx, first)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "dry run: the gate now, for the first node %s (one evaluation; the roll needs %d in a row):\n", first, policy.Consecutive)
			return gate.WriteTable(os.Stdout, e, gate.TableDefault)
		}
		return []subcommand{{cmd, run}}
	})
}

// acceptForced makes the gate's drain check accept the pods the roll was
// told to evict anyway (--force-local-storage, --force-unmanaged).
func acceptForced(local, unmanaged bool) func(*gate.Policy) {
	return func(p *gate.Policy) {
		p.Drain.AllowLocalStoragePods = p.Drain.AllowLocalStoragePods || local
		p.Drain.AllowUnmanagedPods = p.Drain.AllowUnmanagedPods || unmanaged
	}
}

// writeReport writes the downtime report as JSON to file and as Markdown to
// file without its .json extension plus .md.
func writeReport(file string, r *roll.DowntimeReport) error {
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("writing the downtime report: %w", err)
		}
		if err := fn(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("writing the downtime report %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing the downtime report %s: %w", name, err)
		}
		return nil
	}
	return errors.Join(write(file, r.WriteJSON), write(strings.TrimSuffix(file, ".json")+".md", r.WriteMarkdown))
}
