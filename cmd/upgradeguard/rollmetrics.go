package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/upgradeguard/upgradeguard/internal/webserver"
)

// metricsWebFlags protect the roll's --metrics-address as the exporter's
// flags of the same names protect its listener.
type metricsWebFlags struct {
	configFile    string
	healthAddress string
}

func (f *metricsWebFlags) add(cmd *kingpin.CmdClause) {
	cmd.Flag("web.config.file", "exporter-toolkit web config for --metrics-address: TLS and basic authentication (the exporter's format).").StringVar(&f.configFile)
	webserver.AddHealthFlag(cmd, &f.healthAddress)
}

// config is the webserver configuration of the metrics server on addr, or
// nil when addr is empty. Flags that need --metrics-address without it, and
// a web config file exporter-toolkit refuses, are usage errors.
func (f *metricsWebFlags) config(addr string) (*webserver.Config, error) {
	if addr == "" {
		if f.configFile != "" || f.healthAddress != "" {
			return nil, &usageError{"--web.config.file and --" + webserver.HealthAddressFlag + " apply to the metrics server: they need --metrics-address"}
		}
		return nil, nil
	}
	addrs, systemd, file := []string{addr}, false, f.configFile
	c := &webserver.Config{
		FlagConfig:    &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &file},
		HealthAddress: f.healthAddress,
	}
	if err := c.Validate(); err != nil {
		return nil, &usageError{err.Error()}
	}
	return c, nil
}

// serveMetrics serves reg's /metrics (and /healthz, /readyz, behind the
// same web config) on cfg's address until the returned stop is called;
// the health listener, when configured, answers without authentication.
func serveMetrics(ctx context.Context, cfg *webserver.Config, reg *prometheus.Registry, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	webserver.HandleHealth(mux, nil)
	srv, err := webserver.Start(cfg, mux, webserver.HealthHandler(nil), logger)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--metrics-address: %v", err)}
	}
	logger.Info("serving roll metrics", "address", srv.Addrs()[0].String())
	go func() {
		select {
		case err := <-srv.Err():
			logger.Error("metrics server", "err", err)
		case <-ctx.Done():
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}
