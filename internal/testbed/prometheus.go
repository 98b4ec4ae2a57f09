package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"
)

// promStack is the Prometheus replicas, their sidecars and Thanos Query.
type promStack struct {
	dir       string   // <Dir>/prometheus
	replicas  []string // "r0", "r1"
	ports     []int    // web port of each replica
	ruleFiles []string // copies in dir/rules

	mu   sync.Mutex // serialises SetScrapeTargets and SetScrapeJob
	jobs map[string]ScrapeConfig
}

// startPrometheus runs two Prometheus replicas, a Thanos sidecar for each,
// with Options.StoreGateway a store gateway, and Thanos Query, and waits
// until the query sees both sidecars (and the store gateway).
func (tb *Testbed) startPrometheus(ctx context.Context, ps *portSet, ports []int) error {
	o := tb.o
	began := time.Now()
	st := &promStack{
		dir:      filepath.Join(tb.Dir, "prometheus"),
		replicas: []string{"r0", "r1"},
		ports:    ports[0:2],
		jobs:     map[string]ScrapeConfig{},
	}
	sideGRPC, sideHTTP := ports[2:4], ports[4:6]
	queryHTTP, queryGRPC := ports[6], ports[7]
	gwGRPC, gwHTTP := ports[8], ports[9]
	if err := os.MkdirAll(filepath.Join(st.dir, "targets"), 0o755); err != nil {
		return err
	}
	if err := st.copyRules(o.RuleFiles); err != nil {
		return err
	}
	tb.prom = st

	var procs []*Process
	for i, r := range st.replicas {
		if err := st.writeConfig(i, o.ScrapeInterval); err != nil {
			return err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d", st.ports[i])
		tb.PrometheusURLs = append(tb.PrometheusURLs, url)
		ps.release(st.ports[i])
		p, err := tb.startProc("prometheus-"+r, tb.Binaries.Prometheus,
			"--config.file="+st.configPath(i),
			"--storage.tsdb.path="+st.dataPath(i),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", st.ports[i]),
			"--web.external-url="+url,
			"--web.enable-lifecycle",
			// The sidecar needs fixed 2h blocks (no local compaction).
			"--storage.tsdb.min-block-duration=2h",
			"--storage.tsdb.max-block-duration=2h",
		)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	// Each step waits for the previous one: a sidecar that finds its
	// Prometheus not ready retries only after 30s, and Thanos Query's first
	// endpoint discovery is quickest when the sidecars are ready.
	for i, url := range tb.PrometheusURLs {
		if err := waitProcs(ctx, thanosTimeout, "prometheus-"+st.replicas[i]+" /-/ready", procs, httpOK(url+"/-/ready", "")); err != nil {
			return err
		}
	}
	o.Logf("testbed: prometheus ready after %s", since(began))
	for i, r := range st.replicas {
		ps.release(sideGRPC[i], sideHTTP[i])
		p, err := tb.startProc("thanos-sidecar-"+r, tb.Binaries.Thanos, "sidecar",
			"--tsdb.path="+st.dataPath(i),
			"--prometheus.url="+tb.PrometheusURLs[i],
			fmt.Sprintf("--grpc-address=127.0.0.1:%d", sideGRPC[i]),
			fmt.Sprintf("--http-address=127.0.0.1:%d", sideHTTP[i]),
		)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	for i, r := range st.replicas {
		url := fmt.Sprintf("http://127.0.0.1:%d/-/ready", sideHTTP[i])
		if err := waitProcs(ctx, thanosTimeout, "thanos-sidecar-"+r+" /-/ready", procs, httpOK(url, "")); err != nil {
			return err
		}
	}
	endpoints := append([]int(nil), sideGRPC...)
	if o.StoreGateway {
		ps.release(gwGRPC, gwHTTP)
		p, err := tb.startStoreGateway(ctx, st, gwGRPC, gwHTTP)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		endpoints = append(endpoints, gwGRPC)
		o.Logf("testbed: store gateway ready after %s", since(began))
	}
	ps.release(queryHTTP, queryGRPC)
	tb.ThanosQueryURL = fmt.Sprintf("http://127.0.0.1:%d", queryHTTP)
	qargs := []string{"query",
		fmt.Sprintf("--http-address=127.0.0.1:%d", queryHTTP),
		fmt.Sprintf("--grpc-address=127.0.0.1:%d", queryGRPC),
		"--query.replica-label=replica",
	}
	for _, port := range endpoints {
		// Deprecated in Thanos 0.42 in favour of --endpoint.sd-config, but
		// works, and in 0.41 as well.
		qargs = append(qargs, fmt.Sprintf("--endpoint=127.0.0.1:%d", port))
	}
	q, err := tb.startProc("thanos-query", tb.Binaries.Thanos, qargs...)
	if err != nil {
		return err
	}
	procs = append(procs, q)
	stores := func(ctx context.Context) (bool, error) {
		n, err := healthySidecars(ctx, tb.ThanosQueryURL)
		if err != nil {
			return false, err
		}
		if n < len(st.replicas) {
			return false, fmt.Errorf("thanos query sees %d healthy sidecars, want %d", n, len(st.replicas))
		}
		if o.StoreGateway {
			if n, err := healthyStoreGateways(ctx, tb.ThanosQueryURL); err != nil || n < 1 {
				return false, fmt.Errorf("thanos query sees no healthy store gateway with both replicas' labels (%v)", err)
			}
		}
		return true, nil
	}
	if err := waitProcs(ctx, thanosTimeout, "thanos query to see both sidecars (and the store gateway)", procs, stores); err != nil {
		return err
	}
	o.Logf("testbed: thanos query ready after %s", since(began))
	return nil
}

// healthySidecars counts the sidecars in Thanos Query's /api/v1/stores that
// have no error.
func healthySidecars(ctx context.Context, queryURL string) (int, error) {
	body, err := httpGet(ctx, queryURL+"/api/v1/stores")
	if err != nil {
		return 0, err
	}
	var resp struct {
		Status string `json:"status"`
		Data   map[string][]struct {
			Name      string          `json:"name"`
			LastError json.RawMessage `json:"lastError"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("decoding /api/v1/stores: %w: %s", err, truncate(string(body), 300))
	}
	n := 0
	var lastErr error
	for _, s := range resp.Data["sidecar"] {
		if len(s.LastError) == 0 || string(s.LastError) == "null" {
			n++
		} else {
			lastErr = fmt.Errorf("sidecar %s: %s", s.Name, s.LastError)
		}
	}
	if lastErr != nil && n == 0 {
		return 0, lastErr
	}
	return n, nil
}

func (st *promStack) configPath(i int) string {
	return filepath.Join(st.dir, "prometheus-"+st.replicas[i]+".yml")
}

func (st *promStack) dataPath(i int) string { return filepath.Join(st.dir, "data-"+st.replicas[i]) }

func (st *promStack) targetsPath(job string) string {
	return filepath.Join(st.dir, "targets", job+".json")
}

// copyRules copies the rule files into dir/rules.
func (st *promStack) copyRules(files []string) error {
	if len(files) == 0 {
		return nil
	}
	rdir := filepath.Join(st.dir, "rules")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("rule file: %w", err)
		}
		dst := filepath.Join(rdir, fmt.Sprintf("%02d-%s", i, filepath.Base(f)))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
		st.ruleFiles = append(st.ruleFiles, dst)
	}
	return nil
}

// writeConfig writes replica i's configuration: the replicas scrape each
// other (job "prometheus", so every series exists once per replica) and each
// job of SetScrapeTargets from its file_sd file. JSON is YAML.
func (st *promStack) writeConfig(i int, interval time.Duration) error {
	ival := fmt.Sprintf("%dms", interval.Milliseconds())
	var selfTargets []string
	for _, p := range st.ports {
		selfTargets = append(selfTargets, fmt.Sprintf("127.0.0.1:%d", p))
	}
	scrapes := []any{map[string]any{
		"job_name":       "prometheus",
		"static_configs": []any{map[string]any{"targets": selfTargets}},
	}}
	jobs := make([]string, 0, len(st.jobs))
	for j := range st.jobs {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	for _, j := range jobs {
		sc := st.jobs[j].render()
		sc["job_name"] = j
		sc["file_sd_configs"] = []any{map[string]any{"files": []string{st.targetsPath(j)}, "refresh_interval": "5s"}}
		scrapes = append(scrapes, sc)
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     ival,
			"scrape_timeout":      ival,
			"evaluation_interval": ival,
			"external_labels":     map[string]string{"cluster": "testbed", "replica": st.replicas[i]},
		},
		"rule_files":     append([]string{}, st.ruleFiles...),
		"scrape_configs": scrapes,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(st.configPath(i), b)
}

var jobName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]*$`)

// SetScrapeTargets makes both Prometheus replicas scrape targets
// ("host:port", path /metrics) as job. The targets go to a file_sd file
// written atomically; a new job is added to the configuration (plain HTTP,
// or what SetScrapeJob last set for it) and both replicas reload it.
// Scraping starts within seconds. An empty targets list stops scraping the
// job's targets.
func (tb *Testbed) SetScrapeTargets(job string, targets []string) error {
	return tb.setScrape(job, targets, nil)
}

// SetScrapeJob is SetScrapeTargets with how the targets are scraped:
// scheme, TLS, authentication, relabelling (see ScrapeConfig). A changed
// configuration makes both replicas reload.
func (tb *Testbed) SetScrapeJob(job string, targets []string, cfg ScrapeConfig) error {
	return tb.setScrape(job, targets, &cfg)
}

func (tb *Testbed) setScrape(job string, targets []string, cfg *ScrapeConfig) error {
	st := tb.prom
	if st == nil {
		return errors.New("SetScrapeTargets: the testbed runs no Prometheus (Options.Prometheus)")
	}
	if !jobName.MatchString(job) || job == "prometheus" {
		return fmt.Errorf("SetScrapeTargets: bad or reserved job name %q", job)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	groups := []map[string]any{}
	if len(targets) > 0 {
		groups = append(groups, map[string]any{"targets": targets})
	}
	b, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(st.targetsPath(job), b); err != nil {
		return err
	}
	old, known := st.jobs[job]
	if known && (cfg == nil || reflect.DeepEqual(old, *cfg)) {
		return nil // file_sd notices the new file
	}
	if cfg == nil {
		cfg = &ScrapeConfig{}
	}
	st.jobs[job] = *cfg
	for i := range st.replicas {
		if err := st.writeConfig(i, tb.o.ScrapeInterval); err != nil {
			return err
		}
	}
	return tb.ReloadPrometheus()
}

// ReloadPrometheus asks both replicas to reload their configuration and rule
// files (POST /-/reload, which answers once the reload is done).
func (tb *Testbed) ReloadPrometheus() error {
	if tb.prom == nil {
		return errors.New("ReloadPrometheus: the testbed runs no Prometheus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, url := range tb.PrometheusURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/-/reload", nil)
		if err != nil {
			return err
		}
		resp, err := localHTTP.Do(req)
		if err != nil {
			return fmt.Errorf("reloading %s: %w", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("reloading %s: %s (see its log)", url, resp.Status)
		}
	}
	return nil
}

// writeFileAtomic writes path through a temporary file in the same directory
// and a rename, so a reader never sees a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Sample is one series of an instant query result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// QueryThanos runs an instant PromQL query on Thanos Query, with or without
// deduplication over the replica label, and returns the vector result.
func (tb *Testbed) QueryThanos(ctx context.Context, query string, dedup bool) ([]Sample, error) {
	if tb.ThanosQueryURL == "" {
		return nil, errors.New("QueryThanos: the testbed runs no Thanos (Options.Prometheus)")
	}
	return queryInstant(ctx, tb.ThanosQueryURL, query, url.Values{"dedup": {strconv.FormatBool(dedup)}})
}

// queryInstant runs /api/v1/query on a Prometheus-compatible API.
func queryInstant(ctx context.Context, base, query string, extra url.Values) ([]Sample, error) {
	v := url.Values{"query": {query}}
	for k, vs := range extra {
		v[k] = vs
	}
	body, err := httpGet(ctx, base+"/api/v1/query?"+v.Encode())
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decoding the answer to %q: %w", query, err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", query, resp.Error)
	}
	if resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, resp.Data.ResultType)
	}
	out := make([]Sample, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		s, _ := r.Value[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", query, r.Value[1], err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: f})
	}
	return out, nil
}
