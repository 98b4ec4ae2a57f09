package webserver

import (
	"fmt"
	"net/http"
)

// HandleHealth registers /healthz and /readyz on mux. /healthz answers 200
// "ok" while the process serves; /readyz answers 200 "ok" once ready returns
// nil and 503 with its error before. A nil ready is always ready.
func HandleHealth(mux *http.ServeMux, ready func() error) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
}

// HealthHandler serves /healthz and /readyz (see HandleHealth) and 404 for
// every other path: the health listener must never expose the metrics.
func HealthHandler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	HandleHealth(mux, ready)
	return mux
}
