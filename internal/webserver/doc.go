// Package webserver serves an upgradeguard command's HTTP endpoints the way
// the exporter, the roll's --metrics-address and `gate hold` all need: the
// main handler (metrics, and whatever else the command serves) through
// exporter-toolkit, so that one web config file (--web.config.file) gives it
// TLS and basic authentication; and /healthz and /readyz on a separate
// listener (--web.health-address) that answers without either, for the
// kubelet's probes.
//
// Why a separate listener rather than exempting the health paths from the
// web config: exporter-toolkit applies its configuration to the whole
// server (web.Serve in github.com/prometheus/exporter-toolkit web/tls_config.go
// wraps the server's handler in its basic-auth handler and serves TLS on the
// listener) and has no per-path exemption (its issue #111 asks for a
// dedicated health server; pull requests #106 and #151, which would exempt
// paths, were not merged). An exemption could not work with client
// certificates anyway: with client_auth_type RequireAndVerifyClientCert the
// TLS handshake fails before any path is read, and the kubelet presents no
// client certificate. The health listener serves nothing but two one-line
// answers, so leaving it open reveals no more than a TCP probe would.
// kube-state-metrics likewise keeps its own health on a separate telemetry
// port.
//
// `gate hold` serves its /gate readiness endpoint the same way:
// /metrics through Start's main handler, and /gate beside /healthz and
// /readyz on the health handler (a mux with HandleHealth), since a kubelet
// readiness probe reads it.
package webserver
