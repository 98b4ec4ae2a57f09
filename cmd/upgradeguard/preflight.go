package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/prometheus/common/config"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/preflight"
)

// preflightFlags are the flags of the preflight command.
type preflightFlags struct {
	target          string
	files           []string
	checks          []string
	skip            []string
	kubeconfig      string
	noCluster       bool
	nodegroupLabel  string
	queryURL        string
	queryTimeout    time.Duration
	matchers        string
	window          time.Duration
	httpConfigFile  string
	caFile          string
	insecure        bool
	bearerTokenFile string
	headers         []string
	output          string
	by              string
	eks             bool
	awsRegion       string
	awsEndpoint     string
	awsCluster      string
	policy          string
}

func addPreflightFlags(cmd *kingpin.CmdClause, f *preflightFlags) {
	cmd.Flag("target-version", "The Kubernetes release the cluster is upgraded to: 1.N.").Required().StringVar(&f.target)
	cmd.Flag("filename", "Manifest file or directory (read recursively: .yaml, .yml, .json; multi-document; Lists) to judge (repeatable).").Short('f').StringsVar(&f.files)
	cmd.Flag("check", "Run only these finding families (repeatable): "+strings.Join(preflight.Families, ", ")+".").StringsVar(&f.checks)
	cmd.Flag("skip", "Do not run these finding families (repeatable).").StringsVar(&f.skip)
	cmd.Flag("kubeconfig", "Kubeconfig; in a pod the in-cluster configuration is used when empty.").Envar("KUBECONFIG").StringVar(&f.kubeconfig)
	cmd.Flag("no-cluster", "Do not ask the cluster: the Helm releases are then not read when -f is given; the other families that need the cluster are unknown unless skipped.").BoolVar(&f.noCluster)
	cmd.Flag("nodegroup-label", "Node label naming the node group, tried before kops.k8s.io/instancegroup and eks.amazonaws.com/nodegroup.").StringVar(&f.nodegroupLabel)
	cmd.Flag("query.url", "Thanos Query or Prometheus URL (the part before /api/v1), for the API requests the API servers saw.").Envar("UPGRADEGUARD_QUERY_URL").StringVar(&f.queryURL)
	cmd.Flag("query.timeout", "Timeout of each query.").Default("30s").DurationVar(&f.queryTimeout)
	cmd.Flag("query.matchers", `Label matchers selecting this cluster's API server series, e.g. 'cluster="prod"'.`).StringVar(&f.matchers)
	cmd.Flag("apis.window", "A deprecated API version counts when it was requested within this window.").Default("24h").DurationVar(&f.window)
	cmd.Flag("http.config.file", "Prometheus-style HTTP client configuration of the query URL (tls_config, authorization, basic_auth, oauth2, http_headers, proxy).").StringVar(&f.httpConfigFile)
	cmd.Flag("tls.ca-file", "CA certificate to verify the query server.").StringVar(&f.caFile)
	cmd.Flag("tls.insecure-skip-verify", "Do not verify the query server's certificate.").BoolVar(&f.insecure)
	cmd.Flag("bearer-token-file", "File holding a bearer token for the query URL.").StringVar(&f.bearerTokenFile)
	cmd.Flag("header", `Extra query request header "Name: value" (repeatable).`).StringsVar(&f.headers)
	cmd.Flag("eks", "The cluster is on EKS: judge the add-ons against EKS' DescribeAddonVersions for the target (needs AWS credentials and --aws.region).").BoolVar(&f.eks)
	cmd.Flag("aws.region", "AWS region of the cluster: for --eks, and for the capacity family without --query.url (the exporter's AWS collectors run once).").Envar("AWS_REGION").StringVar(&f.awsRegion)
	cmd.Flag("aws.cluster-name", "The name in kubernetes.io/cluster/<name> tags of the cluster's subnets and Auto Scaling groups, for capacity without --query.url.").StringVar(&f.awsCluster)
	cmd.Flag("aws.endpoint-url", "Send AWS requests to this endpoint instead of AWS's.").StringVar(&f.awsEndpoint)
	cmd.Flag("policy", "Preflight policy file (YAML): the workloads family's roll settings (drain_timeout, max_unavailable: the roll's --drain-timeout and --max-unavailable), exclude_namespaces, and each rule's severity (blocker, warning, info, off).").StringVar(&f.policy)
	cmd.Flag("output", "table, json or markdown.").Short('o').Default("table").EnumVar(&f.output, "table", "json", "markdown")
	cmd.Flag("by", "With -o markdown: group the report by namespace, for the teams owning them (cluster-wide findings first): namespace.").EnumVar(&f.by, "namespace")
}

// preflightExit is the error of a preflight that was not clean.
type preflightExit struct {
	code int
	msg  string
}

func (e *preflightExit) Error() string { return e.msg }
func (e *preflightExit) ExitCode() int { return e.code }

// logLevel: blockers and warnings are the preflight's findings (INFO);
// unknown findings are WARN (usage errors are usageError, at ERROR).
func (e *preflightExit) logLevel() slog.Level {
	switch e.code {
	case preflight.ExitBlockers, preflight.ExitWarnings:
		return slog.LevelInfo
	case preflight.ExitUnknown:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// options checks the flags and makes the run's options: every usage error
// (exit 2) before anything is asked of the cluster or the monitoring.
func (f *preflightFlags) options() (preflight.Options, error) {
	var o preflight.Options
	target, err := preflight.ParseVersion(f.target)
	if err != nil {
		return o, usageErr("--target-version: %v", err)
	}
	o.Target = target
	if f.by != "" && f.output != "markdown" {
		return o, usageErr("--by %s needs -o markdown (--output is %s)", f.by, f.output)
	}
	for _, c := range append(append([]string{}, f.checks...), f.skip...) {
		if !slices.Contains(preflight.Families, c) {
			return o, usageErr("--check/--skip %q: want one of %s", c, strings.Join(preflight.Families, ", "))
		}
	}
	o.Checks = preflight.Families
	if len(f.checks) > 0 {
		o.Checks = f.checks
	}
	o.Checks = slices.DeleteFunc(slices.Clone(o.Checks), func(c string) bool { return slices.Contains(f.skip, c) })
	if len(f.files) > 0 {
		files, err := preflight.ManifestFiles(f.files)
		if err != nil {
			return o, usageErr("%v", err)
		}
		o.Manifests = files
	}
	if f.policy != "" {
		p, err := preflight.LoadPolicy(f.policy)
		if err != nil {
			return o, usageErr("--policy: %v", err)
		}
		o.Policy = p
	}
	if f.window <= 0 {
		return o, usageErr("--apis.window %s: want a positive duration", f.window)
	}
	o.Window, o.Matchers, o.NodegroupLabel, o.NoCluster = f.window, f.matchers, f.nodegroupLabel, f.noCluster
	if f.queryURL != "" {
		if f.queryTimeout <= 0 {
			return o, usageErr("--query.timeout %s: want a positive duration", f.queryTimeout)
		}
		hc := config.DefaultHTTPClientConfig
		if f.httpConfigFile != "" {
			c, _, err := config.LoadHTTPConfigFile(f.httpConfigFile)
			if err != nil {
				return o, usageErr("--http.config.file: %v", err)
			}
			hc = *c
		}
		if f.caFile != "" {
			hc.TLSConfig.CAFile = f.caFile
		}
		if f.insecure {
			hc.TLSConfig.InsecureSkipVerify = true
		}
		if f.bearerTokenFile != "" {
			hc.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: f.bearerTokenFile}
		}
		for _, hv := range f.headers {
			name, value, ok := strings.Cut(hv, ":")
			name, value = strings.TrimSpace(name), strings.TrimSpace(value)
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return o, usageErr("--header %q: want \"Name: value\"", hv)
			}
			if hc.HTTPHeaders == nil {
				hc.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{}}
			}
			h := hc.HTTPHeaders.Headers[name]
			h.Values = append(h.Values, value)
			hc.HTTPHeaders.Headers[name] = h
		}
		q, err := preflight.NewQueryClient(f.queryURL, hc, f.queryTimeout)
		if err != nil {
			return o, usageErr("%v", err)
		}
		o.Query = q
	}
	if f.eks && f.awsRegion == "" {
		return o, usageErr("--eks needs --aws.region")
	}
	return o, nil
}

// awsConfig loads the default AWS configuration for --aws.region; the
// SDK's own log lines go to logger at debug level.
func (f *preflightFlags) awsConfig(ctx context.Context, logger *slog.Logger) (aws.Config, error) {
	cfg, err := awsapi.LoadConfig(ctx, f.awsRegion, f.awsEndpoint, logger)
	if err != nil {
		return cfg, fmt.Errorf("AWS configuration: %w", err)
	}
	return cfg, nil
}

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) []subcommand {
		cmd := app.Command("preflight", "Before an upgrade to --target-version: removed and deprecated APIs by use and by source, version skew, drain blockers, add-ons and the workloads the upgrade takes down. Exit 0 clean, 1 blockers, 3 unknown, 4 warnings only.")
		var f preflightFlags
		addPreflightFlags(cmd, &f)
		return []subcommand{{cmd, func(ctx context.Context, logger *slog.Logger) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			if !f.noCluster {
				cfg, err := kube.RESTConfig(f.kubeconfig)
				if err != nil {
					// Not a usage error: the families needing the cluster
					// are reported unknown.
					logger.Warn("no cluster", "err", err)
				} else {
					cfg.QPS, cfg.Burst = 20, 40
					// Built-in types in protobuf, which decodes with less
					// garbage than JSON over tens of thousands of pods
					// (bench-scale at 2,000 Deployments: 490 MiB peak RSS
					// with the pods trimmed, 526 before). The dynamic
					// client (CRDs) keeps JSON.
					pcfg := rest.CopyConfig(cfg)
					pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
					pcfg.ContentType = "application/vnd.kubernetes.protobuf"
					if o.Kube, err = kubernetes.NewForConfig(pcfg); err != nil {
						return err
					}
					if o.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
						return err
					}
				}
			}
			if f.awsRegion != "" && (f.eks || (o.Query == nil && o.Kube != nil)) {
				cfg, err := f.awsConfig(ctx, logger)
				if err != nil {
					return err
				}
				if f.eks {
					o.Addons = preflight.EKSAddonVersions{Client: eks.NewFromConfig(cfg)}
				}
				if o.Query == nil && o.Kube != nil {
					o.LocalCapacity = &preflight.LocalCapacity{Kube: o.Kube, Dynamic: o.Dynamic, AWS: cfg, ClusterName: f.awsCluster, Logger: logger}
				}
			}
			r := preflight.Run(ctx, o, logger)
			switch f.output {
			case "json":
				err = preflight.WriteJSON(gateStdout, r)
			case "markdown":
				if f.by == "namespace" {
					err = preflight.WriteMarkdownByNamespace(gateStdout, r)
				} else {
					err = preflight.WriteMarkdown(gateStdout, r)
				}
			default:
				err = preflight.WriteTable(gateStdout, r)
			}
			if err != nil {
				return err
			}
			if code := r.ExitCode(); code != preflight.ExitClean {
				return &preflightExit{code: code, msg: fmt.Sprintf("preflight for %s: %d blockers, %d unknown, %d warnings", r.Target, r.Count(preflight.Blocker), r.Count(preflight.Unknown), r.Count(preflight.Warning))}
			}
			return nil
		}}}
	})
}
