package metricstore

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// contentType is the text exposition format 0.0.4, which every Prometheus
// version and kube-state-metrics' scrapers accept.
var contentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

var (
	gzipPool = sync.Pool{New: func() any {
		// BestSpeed: a scrape's body is mostly repeated label text, which
		// the fastest level already shrinks about tenfold.
		w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return w
	}}
	bufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
)

// Handler serves a scrape: g's families (the registry: process, Go runtime,
// the collectors' success and duration, the AWS collectors), then each
// writer's, in the text exposition format, gzip-compressed when the request
// accepts it. It replaces promhttp.HandlerFor for an exporter whose biggest
// families are kept rendered (kube-state-metrics' pkg/metricshandler does the
// same). A family must come from one place only; the exporter's tests check
// that no writer's family is also the registry's. Gather errors are logged
// and what was gathered is served, as promhttp.ContinueOnError does.
func Handler(g prometheus.Gatherer, writers []Writer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mfs, err := g.Gather()
		if err != nil {
			logger.Error("gathering metrics; serving what was gathered", "err", err)
		}
		header := w.Header()
		header.Set("Content-Type", contentType)
		var out io.Writer = w
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			header.Set("Content-Encoding", "gzip")
			header.Add("Vary", "Accept-Encoding")
			gz := gzipPool.Get().(*gzip.Writer)
			gz.Reset(w)
			defer func() {
				_ = gz.Close()
				gzipPool.Put(gz)
			}()
			out = gz
		}
		bw := bufPool.Get().(*bufio.Writer)
		bw.Reset(out)
		defer func() {
			bw.Reset(nil)
			bufPool.Put(bw)
		}()
		enc := expfmt.NewEncoder(bw, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				logger.Debug("writing metrics", "err", err)
				return
			}
		}
		for _, wr := range writers {
			if err := wr.WriteMetrics(bw); err != nil {
				logger.Debug("writing metrics", "err", err)
				return
			}
		}
		if err := bw.Flush(); err != nil {
			logger.Debug("writing metrics", "err", err)
		}
	})
}

// acceptsGzip tells whether an Accept-Encoding header accepts gzip with a
// quality above 0 (RFC 9110 section 12.5.3).
func acceptsGzip(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}
