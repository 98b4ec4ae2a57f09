package webserver

import (
	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/exporter-toolkit/web"
	webflag "github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

// HealthAddressFlag is the flag that names the health listener.
const HealthAddressFlag = "web.health-address"

// Config is where and how a command serves HTTP.
type Config struct {
	// FlagConfig holds the listen addresses (or systemd socket activation)
	// and the web config file of the main handler, as exporter-toolkit's
	// flags set them.
	*web.FlagConfig
	// HealthAddress is host:port of the health listener; empty serves no
	// health listener (the command's main handler may still serve
	// /healthz and /readyz, behind the web config).
	HealthAddress string
}

// AddFlags registers exporter-toolkit's --web.listen-address (default
// defaultAddress), --web.systemd-socket and --web.config.file on cmd, and
// --web.health-address.
func AddFlags(cmd *kingpin.CmdClause, defaultAddress string) *Config {
	c := &Config{FlagConfig: webflag.AddFlags(cmd, defaultAddress)}
	AddHealthFlag(cmd, &c.HealthAddress)
	return c
}

// AddHealthFlag registers --web.health-address on cmd into addr.
func AddHealthFlag(cmd *kingpin.CmdClause, addr *string) {
	cmd.Flag(HealthAddressFlag, "Also serve /healthz and /readyz on this address, in plain HTTP and without authentication, whatever --web.config.file says: for the kubelet's probes (empty: none).").
		StringVar(addr)
}
