// Command upgradeguard makes Kubernetes node upgrades on AWS safe: it exports
// what an upgrade depends on, and (in later subcommands) gates and rolls the
// node replacement on it.
package main

import (
	"context"
	"errors"
	"fmt"
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

func run(args []string) int {
	app := kingpin.New("upgradeguard", "Keeps Kubernetes node upgrades on AWS free of downtime.")
	app.Version(version.Print("upgradeguard"))
	app.HelpFlag.Short('h')
	var logCfg promslog.Config
	promslogflag.AddFlags(app, &logCfg)

	exporterCmd := app.Command("exporter", "Serve Prometheus metrics of node readiness, PDB drain headroom and AWS limits.")
	exporterCfg := exporter.AddFlags(exporterCmd)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "upgradeguard: error: %s; try --help\n", err)
		return 2
	}
	logger := promslog.New(&logCfg)
	// client-go logs through klog; send it to the same structured logger.
	klog.SetSlogLogger(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case exporterCmd.FullCommand():
		logger.Info("starting upgradeguard exporter", "version", version.Info(), "build_context", version.BuildContext())
		err = exporter.Run(ctx, exporterCfg, logger)
	}
	if err == nil {
		return 0
	}
	logger.Error("exiting", "err", err)
	if errors.As(err, new(exporter.UsageError)) {
		fmt.Fprintf(os.Stderr, "upgradeguard: error: %s\n", err)
		return 2
	}
	return 1
}
