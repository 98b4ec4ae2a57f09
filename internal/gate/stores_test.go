package gate

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// One external label set is announced by more than one
// store. In the standard layout each Prometheus replica's sidecar serves
// the recent data and a store gateway serves both replicas' uploaded
// blocks, so {cluster, prometheus_replica} is announced twice; what is
// missing is judged store by store. Before, the store gateway's type
// overwrote the sidecar's for the label set, the live sidecar of the other
// replica was no longer a peer, and a single stopped sidecar made every row
// UNKNOWN.
func TestLabelSetServedByMoreThanOneStore(t *testing.T) {
	now := time.Now()
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	const forever = "9223372036854775807"
	errOr := func(e string) string {
		if e == "" {
			return "null"
		}
		return strconv.Quote(e)
	}
	sidecar := func(name, replica, lastError string) string {
		return `{"name":"` + name + `","lastError":` + errOr(lastError) + `,"labelSets":[{"cluster":"prod","prometheus_replica":"prometheus-` + replica + `"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}`
	}
	// A store gateway over the bucket both replicas upload to; its blocks
	// end maxAgo before the evaluation.
	gateway := func(name, lastError string, maxAgo time.Duration) string {
		return `{"name":"` + name + `","lastError":` + errOr(lastError) + `,"labelSets":[{"cluster":"prod","prometheus_replica":"prometheus-0"},{"cluster":"prod","prometheus_replica":"prometheus-1"}],"minTime":` + ms(-30*24*time.Hour) + `,"maxTime":` + ms(-maxAgo) + `}`
	}
	const refused = "rpc error: code = Unavailable desc = connection refused"
	warn1 := `fetch series for {cluster="prod", prometheus_replica="prometheus-1"} Addr: sc1 MinTime: 0 MaxTime: 1: ` + refused
	warnNoAddr := `fetch series for {cluster="prod", prometheus_replica="prometheus-1"}: ` + refused
	for _, c := range []struct {
		name     string
		stores   string
		warnings []string
		goOK     bool
		row, why string
	}{
		// prometheus-1's sidecar stopped, the store
		// gateway's blocks end two hours ago (the gate reads the last
		// minutes), prometheus-0's sidecar answers.
		{"sidecar of one replica down beside a store gateway", `{"sidecar":[` + sidecar("sc0", "0", "") + `,` + sidecar("sc1", "1", refused) + `],"store":[` + gateway("gw", "", 2*time.Hour) + `]}`,
			[]string{warn1}, true, "nodes/ready", `store {cluster="prod", prometheus_replica="prometheus-1"} missing, covered by its replica {cluster="prod", prometheus_replica="prometheus-0"} (sidecar)`},
		// The same with the warning naming no address: the stores Thanos
		// asked for that label set are the candidates.
		{"warning without address", `{"sidecar":[` + sidecar("sc0", "0", "") + `,` + sidecar("sc1", "1", refused) + `],"store":[` + gateway("gw", "", 2*time.Hour) + `]}`,
			[]string{warnNoAddr}, true, "nodes/ready", `covered by its replica {cluster="prod", prometheus_replica="prometheus-0"} (sidecar)`},
		// A store gateway whose blocks reach into the time asked is asked
		// too; it is healthy, and the sidecar still has its replica.
		{"sidecar down, store gateway holding recent blocks", `{"sidecar":[` + sidecar("sc0", "0", "") + `,` + sidecar("sc1", "1", refused) + `],"store":[` + gateway("gw", "", time.Minute) + `]}`,
			[]string{warn1}, true, "nodes/ready", `covered by its replica {cluster="prod", prometheus_replica="prometheus-0"} (sidecar)`},
		// Both sidecars up, the only store gateway down while its blocks
		// reach into the time asked: both replicas' blocks are missing and
		// no sidecar holds a store gateway's data.
		{"the only store gateway down, needed", `{"sidecar":[` + sidecar("sc0", "0", "") + `,` + sidecar("sc1", "1", "") + `],"store":[` + gateway("gw", refused, time.Minute) + `]}`,
			nil, false, "nodes/ready", `is missing and no live replica of it answered (store gateway)`},
		// Two store gateways with the same labels, one down while their
		// blocks reach into the time asked: an HA pair over one bucket and
		// two shards of it (hashmod on the block ID) look the same in the
		// store list, so the other does not stand in.
		{"one of two store gateways with the same labels down", `{"sidecar":[` + sidecar("sc0", "0", "") + `,` + sidecar("sc1", "1", "") + `],"store":[` + gateway("gw-a", refused, time.Minute) + `,` + gateway("gw-b", "", time.Minute) + `]}`,
			nil, false, "nodes/ready", `gw-b announces the same labels, but stores with the same labels may hold different blocks`},
		// A receiver of a hashring down: with the default replication
		// factor 1 the other receivers hold other series, so a "replica"
		// label does not make them peers.
		{"one receiver down", `{"sidecar":[` + sidecar("sc0", "0", "") + `,` + sidecar("sc1", "1", "") + `],"receive":[` +
			`{"name":"rcv-0","lastError":` + errOr(refused) + `,"labelSets":[{"cluster":"prod","replica":"receive-0"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `},` +
			`{"name":"rcv-1","lastError":null,"labelSets":[{"cluster":"prod","replica":"receive-1"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}]}`,
			nil, false, "nodes/ready", `a receiver's series are on other receivers only with a hashring replication factor above 1`},
		// Both sidecars down, the store gateway healthy: the recent data
		// of both replicas is missing.
		{"both sidecars down beside a store gateway", `{"sidecar":[` + sidecar("sc0", "0", refused) + `,` + sidecar("sc1", "1", refused) + `],"store":[` + gateway("gw", "", time.Minute) + `]}`,
			nil, false, "nodes/ready", `no live replica of it answered (sidecar)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.set(healthy()...)
			f.stores, f.warnings = c.stores, c.warnings
			g, _ := newGate(t, f, testPolicy(t, ""), func(cfg *Config) {
				cfg.Now = func() time.Time { return now }
				cfg.ReplicaLabels = []string{"replica", "prometheus_replica"}
			})
			e := eval(t, g, "node-a")
			if (e.Verdict == GO) != c.goOK {
				t.Fatalf("verdict %s, want GO %v:\n%s", e.Verdict, c.goOK, dump(e))
			}
			if r := row(t, e, c.row); !strings.Contains(r.Why, c.why) {
				t.Errorf("%s: %s %q, want it to contain %q", c.row, r.Status, r.Why, c.why)
			}
		})
	}
}
