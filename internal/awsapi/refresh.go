package awsapi

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var lastSuccessDesc = prometheus.NewDesc("upgradeguard_aws_refresh_last_success_timestamp_seconds",
	"Unix time of the last refresh of a collector's AWS data in an account and region that completed without error; its values are that old at most.",
	[]string{"collector", "account", "region"}, nil)

// Refresher runs Refresh in the background, at start and then every
// Interval, so that AWS is never called on a scrape. Refresh keeps its own
// last good values and returns an error when any part of the refresh failed
// (the parts that succeeded stay fresh).
type Refresher struct {
	// Account and Region are the AWS target the refresh reads, the
	// account and region labels of its timestamp.
	Collector, Account, Region string
	Interval                   time.Duration
	Refresh                    func(ctx context.Context) error

	mu          sync.Mutex
	lastSuccess time.Time
	lastErr     error
}

// Run refreshes until ctx ends. Each refresh may take at most Interval.
func (r *Refresher) Run(ctx context.Context, logger *slog.Logger) {
	logger = logger.With("collector", r.Collector, "account", r.Account, "region", r.Region)
	for {
		rctx, cancel := context.WithTimeout(ctx, r.Interval)
		begin := time.Now()
		err := r.Refresh(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.lastErr = err
		if err == nil {
			r.lastSuccess = time.Now()
		}
		r.mu.Unlock()
		if err != nil {
			logger.Error("AWS refresh incomplete; keeping the last good values of what failed", "err", err, "duration_seconds", time.Since(begin).Seconds())
		} else {
			logger.Debug("AWS refresh done", "duration_seconds", time.Since(begin).Seconds())
		}
		// Up to 10% jitter, so that refreshers started together spread out.
		wait := r.Interval + time.Duration(rand.Int64N(int64(r.Interval)/10+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Status returns when the last complete refresh ended (zero if none yet) and
// the error of the last refresh.
func (r *Refresher) Status() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSuccess, r.lastErr
}

// SendStatus sends the refresher's last-success timestamp, when there is one:
// no series means no complete refresh yet.
func (r *Refresher) SendStatus(ch chan<- prometheus.Metric) {
	last, _ := r.Status()
	if last.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue,
		float64(last.UnixNano())/1e9, r.Collector, r.Account, r.Region)
}
