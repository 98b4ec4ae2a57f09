package gate

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// A live replica stands in for a missing store only for the time it holds:
// prometheus-0 restarted two minutes ago without a persistent volume (its
// sidecar's minTime is then), prometheus-1's sidecar is stopped. A query
// reading the last ten minutes (nodes/transitions' increase over its
// window, availability's max_over_time) gets eight minutes of nothing from
// either; an instant selector still finds prometheus-0's latest samples.
func TestReplicaPeerMustHoldTheTimeAsked(t *testing.T) {
	now := time.Now()
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	const forever = "9223372036854775807"
	const refused = "rpc error: code = Unavailable desc = connection refused"
	sidecar := func(name, replica, lastError string, since time.Duration) string {
		e := "null"
		if lastError != "" {
			e = strconv.Quote(lastError)
		}
		return `{"name":"` + name + `","lastError":` + e + `,"labelSets":[{"cluster":"prod","prometheus_replica":"prometheus-` + replica + `"}],"minTime":` + ms(-since) + `,"maxTime":` + forever + `}`
	}
	warn1 := `fetch series for {cluster="prod", prometheus_replica="prometheus-1"} Addr: sc1 MinTime: 0 MaxTime: 1: ` + refused
	for _, c := range []struct {
		name   string
		since0 time.Duration // prometheus-0's data begins this long ago
		goOK   bool
	}{
		{"live replica holds the window", 48 * time.Hour, true},
		{"live replica restarted within the window", 2 * time.Minute, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.set(healthy()...)
			f.stores = `{"sidecar":[` + sidecar("sc0", "0", "", c.since0) + `,` + sidecar("sc1", "1", refused, 48*time.Hour) + `]}`
			f.warnings = []string{warn1}
			g, _ := newGate(t, f, testPolicy(t, ""), func(cfg *Config) {
				cfg.Now = func() time.Time { return now }
				cfg.ReplicaLabels = []string{"replica", "prometheus_replica"}
			})
			e := eval(t, g, "node-a")
			if (e.Verdict == GO) != c.goOK {
				t.Fatalf("verdict %s, want GO %v:\n%s", e.Verdict, c.goOK, dump(e))
			}
			// Instant selectors: prometheus-0's latest samples answer.
			if r := row(t, e, "nodes/ready"); r.Status != Pass || !strings.Contains(r.Why, "covered by its replica") {
				t.Errorf("nodes/ready: %s %q, want PASS covered by its replica", r.Status, r.Why)
			}
			if !c.goOK {
				r := row(t, e, "nodes/transitions")
				if r.Status != Unknown || !strings.Contains(r.Why, `{cluster="prod", prometheus_replica="prometheus-1"} is missing and no live replica of it holds the whole time asked`) {
					t.Errorf("nodes/transitions: %s %q, want UNKNOWN naming the missing store", r.Status, r.Why)
				}
			}
		})
	}
}

// The sibling among store gateways: two over one bucket partitioned by
// time (--min-time/--max-time, Thanos' time-based partitioning) announce
// the same labels but hold different blocks; the one of the older blocks
// does not stand in for the newer one's over a range reading both, nor
// does a twin over the same time (shards by block look the same).
func TestStoreGatewayPeerMustHoldTheTimeAsked(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) *int64 { v := now.Add(d).UnixMilli(); return &v }
	refused := "connection refused"
	sets := []map[string]string{{"cluster": "prod", "prometheus_replica": "prometheus-0"}}
	gw := func(name string, lastError *string, from, to time.Duration) store {
		return store{Name: name, LastError: lastError, LabelSets: sets, MinTime: at(from), MaxTime: at(to), kind: "store"}
	}
	sel := []selection{{matchers: nil, mint: now.Add(-14 * 24 * time.Hour).UnixMilli(), maxt: now.UnixMilli(), whole: true}}
	day := 24 * time.Hour
	for _, c := range []struct {
		name   string
		stores []store
		ok     bool
	}{
		{"older partition does not cover the newer", []store{gw("gw-old", nil, -30*day, -7*day), gw("gw-new", &refused, -7*day, -time.Minute)}, false},
		{"twin over the same time does not cover either", []store{gw("gw-new-a", nil, -7*day, -time.Minute), gw("gw-new-b", &refused, -7*day, -time.Minute)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := &storeView{stores: c.stores}
			note, _, err := v.judgeStores(nil, sel, []string{"prometheus_replica"})
			if (err == nil) != c.ok {
				t.Fatalf("note %q, err %v; want covered %v", note, err, c.ok)
			}
		})
	}
}
