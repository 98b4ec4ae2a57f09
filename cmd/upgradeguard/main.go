// Command upgradeguard makes Kubernetes node upgrades on AWS safe: it exports
// what an upgrade depends on, generates the alerts and dashboards that watch
// it, gates each node replacement on the monitoring, and rolls node groups
// behind that gate.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"k8s.io/klog/v2"

	"github.com/upgradeguard/upgradeguard/internal/exporter"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// A subcommand adds its clause (and its flags) to the application and
// returns what runs it. Each subcommand lives in its own file and appends its
// constructor to subcommands from an init function.
type subcommand struct {
	clause *kingpin.CmdClause
	run    func(ctx context.Context, logger *slog.Logger) error
}

var subcommands []func(app *kingpin.Application) []subcommand

// ExitCoder is an error that asks for a specific exit status (the gate's
// verdicts, for instance). Usage errors exit with 2, any other error with 1.
type ExitCoder interface {
	error
	ExitCode() int
}

// answer is an ExitCoder whose status can be the command's answer rather
// than a failure (the gate's WAIT, the preflight's findings): logLevel says
// how to log it, INFO for an answer, so that a WAIT during an upgrade is not
// reported as an ERROR.
type answer interface {
	logLevel() slog.Level
}

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) []subcommand {
		cmd := app.Command("exporter", "Serve Prometheus metrics of node readiness, PDB drain headroom and AWS limits.")
		cfg := exporter.AddFlags(cmd)
		return []subcommand{{cmd, func(ctx context.Context, logger *slog.Logger) error {
			logger.Info("starting upgradeguard exporter", "version", version.Info(), "build_context", version.BuildContext())
			return exporter.Run(ctx, cfg, logger)
		}}}
	})
}

func run(args []string) int {
	app := kingpin.New("upgradeguard", "Keeps Kubernetes node upgrades on AWS free of downtime.")
	app.Version(version.Print("upgradeguard"))
	app.HelpFlag.Short('h')
	var logCfg promslog.Config
	promslogflag.AddFlags(app, &logCfg)

	runners := map[string]func(context.Context, *slog.Logger) error{}
	for _, add := range subcommands {
		for _, sc := range add(app) {
			runners[sc.clause.FullCommand()] = sc.run
		}
	}

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "upgradeguard: error: %s; try --help\n", err)
		return 2
	}
	logCfg.Writer = gateStderr
	logger := promslog.New(&logCfg)
	// client-go logs through klog; send it to the same structured logger.
	klog.SetSlogLogger(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	runner, ok := runners[cmd]
	if !ok {
		fmt.Fprintf(os.Stderr, "upgradeguard: error: %q needs a subcommand; try --help\n", cmd)
		return 2
	}
	err = runner(ctx, logger)
	if err == nil {
		return 0
	}
	var coder ExitCoder
	if errors.As(err, &coder) {
		if coder.ExitCode() != 0 {
			level := slog.LevelError
			if a, ok := coder.(answer); ok {
				level = a.logLevel()
			}
			logger.Log(ctx, level, "exiting", "status", coder.ExitCode(), "err", err)
		}
		return coder.ExitCode()
	}
	logger.Error("exiting", "err", err)
	if errors.As(err, new(exporter.UsageError)) {
		fmt.Fprintf(os.Stderr, "upgradeguard: error: %s\n", err)
		return 2
	}
	return 1
}
