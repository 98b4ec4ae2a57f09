package roll

// The downtime sampler: while the roll runs, what users reach - every
// Service's ready endpoints, every probe of the gate's policy - is sampled
// every few seconds, so that the roll ends with a measured answer to "was
// there downtime?" (downtime_report.go writes it).

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// DowntimeOptions turn on the downtime report (Config.Downtime).
type DowntimeOptions struct {
	// Probes are requested every Interval (the gate policy's probes).
	Probes []gate.Probe
	// Interval between samples (default 5s). Seconds without ready
	// endpoints are counted in whole intervals: a Service seen without
	// one at a sample is counted without one until the next sample.
	Interval time.Duration
}

// sliceSource is what the sampler reads EndpointSlices from: the roll's own
// EndpointSlice informer (*kube.Informer), a fake in tests.
type sliceSource interface {
	// List returns the *kube.EndpointSlice objects of the cache.
	List() []any
	// Healthy is nil when the cache is synced and its watch works.
	Healthy() error
}

type informerSource struct{ inf *kube.Informer }

func (s informerSource) List() []any    { return s.inf.GetStore().List() }
func (s informerSource) Healthy() error { return s.inf.Healthy() }

// serviceRecord is what the sampler saw of one Service.
type serviceRecord struct {
	// everReady: seen with a ready endpoint at least once. Only such a
	// Service can have downtime; one that never had a ready endpoint
	// (scaled to zero, no selector) is listed, not counted.
	everReady bool
	// present: it had EndpointSlices at the last sample (the EndpointSlice
	// controller keeps one, maybe empty, for every Service with a
	// selector: none means the Service was deleted).
	present            bool
	lastReady          int
	minReady, maxReady int
	noReady            time.Duration
	outages            int
	longest, current   time.Duration
}

// probeRecord is what the sampler saw of one probe.
type probeRecord struct {
	url                        string
	requests, failed, timeouts int
	lastError                  string
	firstFailure, lastFailure  time.Time
}

// sampler samples Services and probes; its state is also the roll's
// downtime metrics (downtime_metrics.go).
type sampler struct {
	src      sliceSource
	probes   []gate.Probe
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu      sync.Mutex
	start   time.Time
	last    time.Time // the last endpoint sample, healthy or not
	blind   bool      // the last sample could not read the cache
	samples int
	// unobserved is the time the cache could not be read (not synced, or
	// its watch failing): downtime then is unknown, never assumed absent.
	unobserved time.Duration
	lastErr    string
	services   map[serviceKey]*serviceRecord
	probeRecs  map[string]*probeRecord
	nodes      []NodeResult

	// gateHold are the Services of gate hold's own pods (their slices
	// carry its labels, kube.EndpointSlice.GateHold): ready only while the
	// gate says GO, so their endpoints say what the gate said, not what
	// users reach. Listed, never counted.
	gateHold map[serviceKey]bool

	cancel context.CancelFunc
	done   sync.WaitGroup
}

type serviceKey struct{ namespace, name string }

func newSampler(src sliceSource, opts DowntimeOptions, now func() time.Time, logger *slog.Logger) *sampler {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	s := &sampler{src: src, probes: opts.Probes, interval: opts.Interval, now: now, logger: logger,
		services: map[serviceKey]*serviceRecord{}, probeRecs: map[string]*probeRecord{}, gateHold: map[serviceKey]bool{}}
	for _, p := range opts.Probes {
		s.probeRecs[p.Name] = &probeRecord{url: p.URL}
	}
	s.start = now()
	return s
}

// run samples until stop: endpoints every interval, and each probe every
// interval in a loop of its own, so a slow probe delays no other sample.
func (s *sampler) run(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done.Go(func() {
		tick := time.NewTicker(s.interval)
		defer tick.Stop()
		s.sampleEndpoints()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.sampleEndpoints()
			}
		}
	})
	for i := range s.probes {
		s.done.Go(func() {
			tick := time.NewTicker(s.interval)
			defer tick.Stop()
			for {
				s.probe(ctx, &s.probes[i])
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
}

// stop ends the sampling with one last endpoint sample.
func (s *sampler) stop() {
	if s.cancel != nil {
		s.cancel()
		s.done.Wait()
	}
	s.sampleEndpoints()
}

// sampleEndpoints reads every Service's ready endpoints from the cache.
func (s *sampler) sampleEndpoints() {
	now := s.now()
	var objs []any
	err := s.src.Healthy()
	if err == nil {
		objs = s.src.List()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	elapsed := time.Duration(0)
	if s.samples > 0 || s.blind {
		elapsed = now.Sub(s.last)
	} else {
		elapsed = now.Sub(s.start)
		if err == nil {
			elapsed = 0 // synced at the first sample: nothing was missed
		}
	}
	s.last = now
	if err != nil {
		// The interval before a blind sample is unknown too.
		s.unobserved += elapsed
		s.blind = true
		s.lastErr = err.Error()
		return
	}
	wasBlind := s.blind
	if wasBlind {
		s.unobserved += elapsed
	}
	s.blind = false
	s.samples++
	bySvc := map[serviceKey][]*kube.EndpointSlice{}
	for _, o := range objs {
		sl, ok := o.(*kube.EndpointSlice)
		if !ok || sl.Service == "" {
			continue
		}
		k := serviceKey{sl.Namespace, sl.Service}
		if sl.GateHold {
			s.gateHold[k] = true
			continue
		}
		bySvc[k] = append(bySvc[k], sl)
	}
	for k, rec := range s.services {
		if _, ok := bySvc[k]; !ok {
			rec.present = false // deleted: its time from now on is no downtime
			rec.current = 0
		}
	}
	for k, slices := range bySvc {
		ready := kube.CountEndpoints(slices).Ready
		rec := s.services[k]
		if rec == nil {
			rec = &serviceRecord{minReady: ready, maxReady: ready}
			s.services[k] = rec
		}
		// The interval since the last sample counts with the state seen
		// then: without a ready endpoint if the Service had none.
		if rec.present && rec.everReady && rec.lastReady == 0 && !wasBlind {
			rec.noReady += elapsed
			rec.current += elapsed
			rec.longest = max(rec.longest, rec.current)
		}
		if ready == 0 && rec.everReady && (rec.lastReady > 0 || !rec.present) {
			rec.outages++
			rec.current = 0
		}
		rec.everReady = rec.everReady || ready > 0
		rec.present, rec.lastReady = true, ready
		rec.minReady, rec.maxReady = min(rec.minReady, ready), max(rec.maxReady, ready)
	}
}

// probe requests one probe once and records the outcome.
func (s *sampler) probe(ctx context.Context, p *gate.Probe) {
	r := p.Run(ctx)
	if ctx.Err() != nil && r.Status != gate.Pass {
		return // the roll ended during the request: not the endpoint's doing
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.probeRecs[p.Name]
	rec.requests++
	switch r.Status {
	case gate.Pass:
		return
	case gate.Unknown:
		// No answer in time: not known to be down, but a user saw none
		// either; never counted as up.
		rec.timeouts++
	default:
		rec.failed++
	}
	if rec.firstFailure.IsZero() {
		rec.firstFailure = now
	}
	rec.lastFailure = now
	rec.lastError = r.Why
	if r.Why == "" {
		rec.lastError = r.Value
	}
}

// nodeDone records a replaced (or failed) node's step timings.
func (s *sampler) nodeDone(nr NodeResult) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = append(s.nodes, nr)
}

// startDowntime starts the downtime sampler when Config.Downtime asks for
// it: its own EndpointSlice informer (kube's, stripped as the exporter's)
// and the policy's probes, on a context that outlives an interrupted roll
// until endDowntime. nil when off.
func (r *roller) startDowntime(ctx context.Context) *sampler {
	if r.cfg.Downtime == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	infs := kube.NewInformers(r.cfg.Client, kube.Options{}, r.cfg.Logger)
	inf := infs.EndpointSlices()
	infs.Start(ctx)
	s := newSampler(informerSource{inf}, *r.cfg.Downtime, r.cfg.Now, r.cfg.Logger)
	// Sampling starts once the cache is synced (or has had its chance):
	// the time before counts as unobserved, never as up.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := infs.WaitForSync(wctx); err != nil {
		r.cfg.Logger.Warn("the downtime report cannot see the Services' endpoints; it will say so", "err", err)
	}
	wcancel()
	s.run(ctx)
	stopInformers := s.cancel
	s.cancel = func() { stopInformers(); cancel() }
	if r.cfg.Registerer != nil {
		if err := r.cfg.Registerer.Register(s); err != nil {
			r.cfg.Logger.Warn("downtime metrics not registered", "err", err)
		}
	}
	return s
}

// endDowntime stops the sampler and prints the verdict and the worst
// offenders; the report goes into the Result.
func (r *roller) endDowntime(s *sampler, res *Result) {
	if s == nil {
		return
	}
	s.stop()
	rep := s.report(r.plan.Roll)
	res.Downtime = rep
	r.rep.linef("", "%s", rep.Verdict())
	shown := 0
	for _, sd := range rep.Services {
		if !sd.down() && !sd.NoReadyAtEnd || shown == 5 {
			break
		}
		shown++
		r.rep.linef("", "  Service %s/%s: %s without a ready endpoint in %d outage(s), min %d ready",
			sd.Namespace, sd.Service, fsec(sd.NoReadySeconds), sd.Outages, sd.MinReady)
	}
	for _, p := range rep.Probes {
		if !p.down() {
			break
		}
		r.rep.linef("", "  probe %s: %d of %d requests failed, %d timed out; last: %s", p.Probe, p.Failed, p.Requests, p.Timeouts, p.LastError)
	}
}
