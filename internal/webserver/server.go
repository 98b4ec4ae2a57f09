package webserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// readHeaderTimeout bounds how long a client may take to send its request
// headers (a slow client must not hold connections for ever).
const readHeaderTimeout = 10 * time.Second

// Validate checks the web config file (its YAML, certificate and key files,
// and password hashes, as exporter-toolkit reads them) and the form of the
// health address. Its errors name the flag.
func (c *Config) Validate() error {
	if c.FlagConfig != nil && c.WebConfigFile != nil && *c.WebConfigFile != "" {
		if err := web.Validate(*c.WebConfigFile); err != nil {
			return fmt.Errorf("--web.config.file %s: %w", *c.WebConfigFile, err)
		}
	}
	if c.HealthAddress != "" {
		if _, _, err := net.SplitHostPort(c.HealthAddress); err != nil {
			return fmt.Errorf("--%s %q: %w", HealthAddressFlag, c.HealthAddress, err)
		}
	}
	return nil
}

// Server is a command's running HTTP servers: the main one and, when
// configured, the health listener.
type Server struct {
	main, health *http.Server
	addrs        []net.Addr
	healthAddr   net.Addr
	errc         chan error
}

// Start validates cfg, binds the health listener and the main listeners,
// and serves in the background: handler through exporter-toolkit (TLS and
// basic auth from the web config file), health on the health listener in
// plain HTTP without authentication. health is usually HealthHandler(ready);
// a command whose probes read more (gate hold's /gate, which a readiness
// probe reads) adds its paths to a mux with HandleHealth. Only what a probe
// must read belongs there. Invalid configuration and addresses that cannot be bound are
// returned here, before anything is served (with systemd socket activation
// or a vsock:// address, exporter-toolkit binds the main listeners itself and
// their errors come through Err instead).
func Start(cfg *Config, handler, health http.Handler, logger *slog.Logger) (*Server, error) {
	if cfg == nil || cfg.FlagConfig == nil {
		return nil, errors.New("webserver: no listen configuration")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		main: &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout},
		errc: make(chan error, 2),
	}
	var healthLn net.Listener
	if cfg.HealthAddress != "" {
		ln, err := net.Listen("tcp", cfg.HealthAddress)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", HealthAddressFlag, err)
		}
		healthLn, s.healthAddr = ln, ln.Addr()
		if health == nil {
			health = HealthHandler(nil)
		}
		s.health = &http.Server{Handler: health, ReadHeaderTimeout: readHeaderTimeout}
	}

	selfListen := cfg.WebSystemdSocket != nil && *cfg.WebSystemdSocket
	var addrs []string
	if cfg.WebListenAddresses != nil {
		addrs = *cfg.WebListenAddresses
	}
	for _, a := range addrs {
		selfListen = selfListen || strings.HasPrefix(a, "vsock://")
	}
	var listeners []net.Listener
	if !selfListen {
		if len(addrs) == 0 {
			closeAll(healthLn)
			return nil, web.ErrNoListeners
		}
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				closeAll(append(listeners, healthLn)...)
				return nil, fmt.Errorf("--web.listen-address: %w", err)
			}
			listeners = append(listeners, ln)
			s.addrs = append(s.addrs, ln.Addr())
		}
	}

	if healthLn != nil {
		logger.Info("serving health endpoints without authentication", "address", s.healthAddr.String())
		go func() { s.report(s.health.Serve(healthLn)) }()
	}
	go func() {
		if selfListen {
			s.report(web.ListenAndServe(s.main, cfg.FlagConfig, logger))
			return
		}
		s.report(web.ServeMultiple(listeners, s.main, cfg.FlagConfig, logger))
	}()
	return s, nil
}

func (s *Server) report(err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		select {
		case s.errc <- err:
		default:
		}
	}
}

func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Err receives the first error either server stopped with (not the
// stop that Shutdown asks for).
func (s *Server) Err() <-chan error { return s.errc }

// Addrs are the main listeners' bound addresses (empty when
// exporter-toolkit binds them itself).
func (s *Server) Addrs() []net.Addr { return s.addrs }

// HealthAddr is the health listener's bound address, or nil.
func (s *Server) HealthAddr() net.Addr { return s.healthAddr }

// Shutdown stops both servers, letting requests in flight finish until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.main.Shutdown(ctx)
	if s.health != nil {
		err = errors.Join(err, s.health.Shutdown(ctx))
	}
	return err
}
