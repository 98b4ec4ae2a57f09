package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/upgradeguard/upgradeguard/internal/exporter"
	"github.com/upgradeguard/upgradeguard/internal/generate"
)

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) []subcommand {
		cmd := app.Command("generate", "Write the PrometheusRule, the Grafana dashboards and their ConfigMaps.")
		o := generate.DefaultOptions()
		var out string
		var check bool
		cmd.Flag("out", "Directory to write into (created if missing).").Required().StringVar(&out)
		cmd.Flag("check", "Write nothing; fail when the directory differs from what would be generated.").BoolVar(&check)
		cmd.Flag("exporter-job", "Job label of the upgradeguard exporter's targets.").Default(o.ExporterJob).StringVar(&o.ExporterJob)
		cmd.Flag("aws-node-job", "Job label of the aws-node (VPC CNI ipamd) targets.").Default(o.AWSNodeJob).StringVar(&o.AWSNodeJob)
		cmd.Flag("kube-state-metrics-job", "Job label of kube-state-metrics.").Default(o.KubeStateMetricsJob).StringVar(&o.KubeStateMetricsJob)
		cmd.Flag("apiserver-job", "Job label of the Kubernetes API servers' targets.").Default(o.APIServerJob).StringVar(&o.APIServerJob)
		cmd.Flag("removed-api-release", "The release (1.N) the cluster is upgraded to next: UpgradeGuardRemovedAPIInUse fires while a version it removes is requested.").Default(o.RemovedAPIRelease).StringVar(&o.RemovedAPIRelease)
		cmd.Flag("cluster-label", "Label that names the cluster (an external label of Prometheus, usually).").Default(o.ClusterLabel).StringVar(&o.ClusterLabel)
		cmd.Flag("runbook-base-url", "Where docs/runbooks.md is published; alerts link to it with #<alertname lower-cased>.").Default(o.RunbookBaseURL).StringVar(&o.RunbookBaseURL)
		return []subcommand{{cmd, func(ctx context.Context, logger *slog.Logger) error {
			if check {
				diffs, err := generate.Diff(out, o)
				if err != nil {
					return err
				}
				if len(diffs) > 0 {
					return fmt.Errorf("%s is out of date; run upgradeguard generate --out %s:\n  %s", out, out, strings.Join(diffs, "\n  "))
				}
				logger.Info("generated files are up to date", "dir", out)
				return nil
			}
			names, err := generate.Write(out, o)
			if err != nil {
				return exporter.UsageError{Err: fmt.Errorf("writing into %s: %w", out, err)}
			}
			logger.Info("generated", "dir", out, "files", len(names))
			return nil
		}}}
	})
}
