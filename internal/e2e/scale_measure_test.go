//go:build scale

package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// scrapes is how many scrapes are timed per exporter.
const scrapes = 20

// prometheusAccept is the Accept header of the testbed's Prometheus (2.42)
// scrapes; they also send Accept-Encoding: gzip.
const prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// measured is what one exporter of the scale scenario costs.
type measured struct {
	ready, allSeen time.Duration // from the start until /readyz answers 200, and until every pod is served
	rss, heap      float64       // process_resident_memory_bytes, go_memstats_heap_inuse_bytes after the scrapes
	rssAnon        float64       // of rss, anonymous memory (heap, stacks; the rest is mapped files: the binary), from /proc/<pid>/status
	heapFree       float64       // go_memstats_heap_idle_bytes minus go_memstats_heap_released_bytes: free heap the runtime has not returned
	runtimeSys     float64       // stacks and the runtime's own structures: go_memstats_stack_sys_bytes, mspan, mcache, GC and other sys
	median, p90    time.Duration // of the timed scrapes
	gzip           bool          // the scrapes' bodies were gzip-encoded
	series         int           // samples in the scrape, as Prometheus counts them
	bytes, sent    int           // body size uncompressed, and as sent
	load           string        // 1-minute load average after the scrapes
	nodes          map[string]bool
}

func (m measured) String() string {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	enc := "identity"
	if m.gzip {
		enc = "gzip"
	}
	return fmt.Sprintf("ready %5.1fs, every pod %5.1fs, RSS %6.1f MiB (%.1f anonymous), heap in use %6.1f MiB (%.1f free, not returned; %.1f stacks and runtime), scrape median %6.1f ms p90 %6.1f ms (%s), %d series, %.2f MiB (%.0f KiB sent), load %s",
		m.ready.Seconds(), m.allSeen.Seconds(), m.rss/(1<<20), m.rssAnon/(1<<20), m.heap/(1<<20), m.heapFree/(1<<20), m.runtimeSys/(1<<20), ms(m.median), ms(m.p90), enc,
		m.series, float64(m.bytes)/(1<<20), float64(m.sent)/(1<<10), m.load)
}

// measure starts an exporter of shard (its default collectors: nodes, pdb,
// workloads), waits until it is ready and serves, for each node it owns, the
// pods perNode says the node holds, then times the scrapes, reads its memory
// from the last one, prints them as label's and stops it. env is added to
// the exporter's environment. cmp, when not nil,
// holds the exporters a shard or the unsharded one is compared with. Each
// exporter's heap profile and last scrape are written, and the profile's top
// printed.
func measure(t *testing.T, ctx context.Context, tb *testbed.Testbed, bin string, sc scenario, perNode map[string]int, shard kube.Shard, label string, env []string, cmp *comparison) measured {
	t.Helper()
	addr := freeAddr(t)
	name := "upgradeguard-exporter"
	args := []string{bin, "exporter", "--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr,
		"--kube.sync-timeout", "10m", "--web.enable-pprof"}
	if shard.Sharded() {
		name = fmt.Sprintf("%s-shard-%d-of-%d", name, shard.Index, shard.Total)
		args = append(args, fmt.Sprintf("--shard=%d", shard.Index), fmt.Sprintf("--total-shards=%d", shard.Total))
	}
	started := time.Now()
	proc, err := tb.StartProcess(name, args, env)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = proc.Stop() }()
	base := "http://" + addr
	if err := testbed.WaitFor(ctx, 10*time.Minute, name+" to be ready", func(ctx context.Context) (bool, error) {
		code, _, err := get(ctx, base+"/readyz", false)
		return code == http.StatusOK, fmt.Errorf("readyz %d: %v", code, err)
	}); err != nil {
		t.Fatal(err)
	}
	m := measured{ready: time.Since(started)}

	// Every node of the shard, with its pods; no other node.
	want := map[string]int{}
	for i := range sc.nodes {
		if n := scaleNodeName(i); shard.OwnsNode(n) {
			want[n] = perNode[n]
		}
	}
	if err := testbed.WaitFor(ctx, 5*time.Minute, name+" to serve every pod of its nodes", func(ctx context.Context) (bool, error) {
		mfs, err := scrape.Get(ctx, base+"/metrics")
		if err != nil {
			return false, err
		}
		got := map[string]int{}
		for _, s := range mfs.Samples("upgradeguard_node_evictable_pods", nil) {
			got[s.Labels["node"]] = int(s.Value)
		}
		for n, c := range want {
			if got[n] != c {
				return false, fmt.Errorf("node %s: %d pods served, want %d (%d of %d nodes served)", n, got[n], c, len(got), len(want))
			}
		}
		for n := range got {
			if _, ok := want[n]; !ok {
				return false, fmt.Errorf("node %s served, not one of the shard's", n)
			}
		}
		m.nodes = map[string]bool{}
		for n := range got {
			m.nodes[n] = true
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	m.allSeen = time.Since(started)

	var lat []time.Duration
	var body []byte
	for range scrapes {
		begin := time.Now()
		code, b, err := get(ctx, base+"/metrics", true)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s/metrics: %d %v", base, code, err)
		}
		lat = append(lat, time.Since(begin))
		body = b
	}
	slices.Sort(lat)
	m.median, m.p90 = lat[len(lat)/2], lat[len(lat)*9/10]
	m.sent = len(body)
	if m.gzip = len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b; m.gzip {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	m.bytes = len(body)
	// The last scrape is kept beside the heap profile, to compare exporters.
	scrapePath := filepath.Join(outputDir(t), fmt.Sprintf("exporter-metrics-%dnodes-%s.txt", sc.nodes, strings.ReplaceAll(label, " ", "-")))
	if err := os.WriteFile(scrapePath, body, 0o644); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if line != "\n" && !strings.HasPrefix(line, "#") {
			m.series++
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the last scrape: %v", err)
	}
	m.rss, _ = scrape.Families(mfs).Value("process_resident_memory_bytes", nil)
	value := func(name string) float64 { v, _ := scrape.Families(mfs).Value(name, nil); return v }
	m.heap = value("go_memstats_heap_inuse_bytes")
	m.heapFree = value("go_memstats_heap_idle_bytes") - value("go_memstats_heap_released_bytes")
	for _, name := range []string{"go_memstats_stack_sys_bytes", "go_memstats_mspan_sys_bytes", "go_memstats_mcache_sys_bytes",
		"go_memstats_buck_hash_sys_bytes", "go_memstats_gc_sys_bytes", "go_memstats_other_sys_bytes"} {
		m.runtimeSys += value(name)
	}
	m.rssAnon = rssAnon(proc.Pid())
	m.load = loadAvg()
	line := fmt.Sprintf("scale %s, %-14s %s", sc, label+":", m)
	line += cmp.String(m)
	fmt.Println(line)
	heapProfile(t, ctx, base, sc, label)
	return m
}

// comparison is what an exporter's memory is compared with: empty, the
// exporter of an empty cluster (no node, pod or PDB: the cost of the process
// itself: binary pages, runtime, package initialisation, informers), and,
// for a shard, unsharded.
type comparison struct {
	empty, unsharded *measured
}

// String returns, for m, its memory beyond the empty cluster's exporter (the
// part that depends on the cluster) and, for a shard, both its memory and that
// part as percentages of the unsharded exporter's: sharding can divide only
// the part that depends on the cluster. "" when cmp is nil.
func (c *comparison) String(m measured) string {
	if c == nil || c.empty == nil {
		return ""
	}
	mib := func(v float64) float64 { return v / (1 << 20) }
	e := c.empty
	out := fmt.Sprintf("; beyond the empty cluster's: RSS %.1f MiB (%.1f anonymous), heap in use %.1f MiB",
		mib(m.rss-e.rss), mib(m.rssAnon-e.rssAnon), mib(m.heap-e.heap))
	if u := c.unsharded; u != nil {
		pct := func(v, ref float64) float64 { return 100 * v / ref }
		out += fmt.Sprintf("; of the unsharded exporter's: RSS %.0f%% (anonymous %.0f%%, heap in use %.0f%%), beyond the empty cluster's RSS %.0f%% (anonymous %.0f%%, heap in use %.0f%%)",
			pct(m.rss, u.rss), pct(m.rssAnon, u.rssAnon), pct(m.heap, u.heap),
			pct(m.rss-e.rss, u.rss-e.rss), pct(m.rssAnon-e.rssAnon, u.rssAnon-e.rssAnon), pct(m.heap-e.heap, u.heap-e.heap))
	}
	return out
}

// rssAnon is the RssAnon of process pid in bytes (0 when unknown).
func rssAnon(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "RssAnon:" && f[2] == "kB" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// heapProfile fetches the exporter's /debug/pprof/heap into
// UPGRADEGUARD_SCALE_PROFILE_DIR (else the test's artifact directory) and
// prints the top of its in-use space.
func heapProfile(t *testing.T, ctx context.Context, base string, sc scenario, label string) {
	t.Helper()
	dir := outputDir(t)
	code, body, err := get(ctx, base+"/debug/pprof/heap", false)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s/debug/pprof/heap: %d %v", base, code, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("exporter-heap-%dnodes-%s.pb.gz", sc.nodes, strings.ReplaceAll(label, " ", "-")))
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=15", "-sample_index=inuse_space", path).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof %s: %v\n%s", path, err, out)
	}
	fmt.Printf("scale %s, %s: heap profile in %s\n%s", sc, label, path, out)
}

// outputDir is UPGRADEGUARD_SCALE_PROFILE_DIR, else the test's artifact
// directory, created.
func outputDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("UPGRADEGUARD_SCALE_PROFILE_DIR")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// get GETs url (as Prometheus scrapes, with gzip, when scrape), reads the
// whole body as sent, and returns the status and the body.
func get(ctx context.Context, url string, scrape bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if scrape {
		req.Header.Set("Accept", prometheusAccept)
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// rawClient leaves bodies as the server sent them (no transparent gzip).
var rawClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableCompression: true}}
