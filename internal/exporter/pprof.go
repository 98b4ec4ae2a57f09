package exporter

import (
	"net/http"
	"net/http/pprof"
)

// withPprof serves h, and net/http/pprof's index and profiles under
// /debug/pprof/ (heap, allocs, goroutine, profile, trace...), for
// --web.enable-pprof.
//
// They go on the main listener, where --web.config.file's TLS and basic
// auth protect them as they protect /metrics, and never on the health
// listener, which answers without authentication and serves nothing but
// /healthz and /readyz: a profile shows the program's call stacks, its
// command line and where its memory goes, and a CPU profile or trace costs
// CPU for as long as the client asks. Prometheus serves its own profiles
// the same way: web/web.go routes /debug/*subpath on the handler its
// --web.config.file protects.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
