package testbed

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ServeGauge serves one gauge, name, with no labels on a loopback port and
// makes both Prometheus replicas scrape it as job: a switch that tests and
// the demo flip to make an alert fire (Store(1)) and resolve (Store(0)).
// stop closes the listener.
func (tb *Testbed) ServeGauge(job, name string) (gauge *atomic.Int64, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	gauge = new(atomic.Int64)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s %d\n", name, name, gauge.Load())
	})}
	go func() { _ = srv.Serve(ln) }()
	stop = func() { _ = srv.Close() }
	if err := tb.SetScrapeTargets(job, []string{ln.Addr().String()}); err != nil {
		stop()
		return nil, nil, err
	}
	return gauge, stop, nil
}
