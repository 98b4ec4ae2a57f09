package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one series of an instant vector (or the value of a scalar).
type sample struct {
	labels map[string]string
	value  float64
}

// result is a query's answer.
type result struct {
	samples []sample
	scalar  bool // the result was a scalar (one sample, no labels)
	// note explains warnings that were judged harmless (a missing store
	// covered by a live replica peer).
	note string
}

// queryError is a query that gave no usable answer. unreachable marks
// failures to get an answer from the monitoring at all.
type queryError struct {
	msg         string
	unreachable bool
	status      int // HTTP status, when there was an answer
}

func (e *queryError) Error() string { return e.msg }

// evalState is what the queries of one evaluation share.
type evalState struct {
	g    *Gate
	node string
	at   time.Time
	sem  chan struct{}

	mu          sync.Mutex
	queries     int
	unreachable bool

	storesOnce sync.Once
	stores     *storeView // nil: not Thanos
	storesErr  error
}

func (s *evalState) count() {
	s.mu.Lock()
	s.queries++
	s.mu.Unlock()
}

func (s *evalState) markUnreachable(err error) {
	var qe *queryError
	if errors.As(err, &qe) && qe.unreachable {
		s.mu.Lock()
		s.unreachable = true
		s.mu.Unlock()
	}
}

// apiResponse is the envelope of every Prometheus API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// do sends one API request and returns the decoded envelope. Every
// failure to get a Prometheus API answer is unreachable; an API error
// (status "error") is not, except for 5xx.
func (s *evalState) do(ctx context.Context, method, path string, form url.Values) (*apiResponse, error) {
	g := s.g
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	s.count()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.QueryTimeout)
	defer cancel()
	endpoint := g.cfg.URL + path
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequestWithContext(ctx, method, endpoint, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		if len(form) > 0 {
			endpoint += "?" + form.Encode()
		}
		req, err = http.NewRequestWithContext(ctx, method, endpoint, nil)
	}
	if err != nil {
		return nil, &queryError{msg: fmt.Sprintf("building the request to %s: %v", endpoint, err)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &queryError{msg: fmt.Sprintf("no answer from %s within the query timeout %s", g.cfg.URL+path, g.cfg.QueryTimeout), unreachable: true}
		}
		return nil, &queryError{msg: fmt.Sprintf("%s %s: %v", method, g.cfg.URL+path, err), unreachable: true}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, &queryError{msg: fmt.Sprintf("reading the answer of %s: %v", g.cfg.URL+path, err), unreachable: true}
	}
	var r apiResponse
	if jerr := json.Unmarshal(body, &r); jerr != nil || r.Status == "" {
		why := "malformed JSON"
		if jerr == nil {
			why = "no status field"
		}
		return nil, &queryError{
			msg:         fmt.Sprintf("%s answered HTTP %d that is not the Prometheus API (%s): %s", g.cfg.URL+path, resp.StatusCode, why, snippet(body)),
			unreachable: resp.StatusCode >= 500 || resp.StatusCode < 300,
			status:      resp.StatusCode,
		}
	}
	if r.Status != "success" {
		msg := fmt.Sprintf("%s answered HTTP %d, %s: %s", g.cfg.URL+path, resp.StatusCode, r.ErrorType, r.Error)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg += " (check the credentials and headers)"
		}
		return &r, &queryError{msg: msg, unreachable: resp.StatusCode >= 500, status: resp.StatusCode}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &queryError{msg: fmt.Sprintf("%s answered HTTP %d with status success", g.cfg.URL+path, resp.StatusCode), unreachable: true}
	}
	return &r, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}

// query runs an instant query at the evaluation time and judges its
// warnings: any warning not explained by a missing store with a live
// replica peer is an error.
func (s *evalState) query(ctx context.Context, q string) (result, error) {
	res, err := s.queryRaw(ctx, q)
	if err != nil {
		s.markUnreachable(err)
	}
	return res, err
}

func (s *evalState) queryRaw(ctx context.Context, q string) (result, error) {
	view, err := s.storeView(ctx)
	if err != nil {
		return result{}, err
	}
	form := url.Values{
		"query":   {q},
		"time":    {strconv.FormatFloat(float64(s.at.UnixMilli())/1000, 'f', 3, 64)},
		"timeout": {s.g.cfg.QueryTimeout.String()},
	}
	if view != nil {
		form.Set("dedup", "true")
		form.Set("partial_response", "true")
	}
	r, err := s.do(ctx, http.MethodPost, "/api/v1/query", form)
	if err != nil {
		return result{}, err
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		return result{}, &queryError{msg: fmt.Sprintf("decoding the data of %q: %v", q, err), unreachable: true}
	}
	var res result
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return result{}, &queryError{msg: fmt.Sprintf("decoding the vector of %q: %v", q, err), unreachable: true}
		}
		for _, v := range vec {
			f, err := parseValue(v.Value[1])
			if err != nil {
				return result{}, &queryError{msg: fmt.Sprintf("query %q: %v", q, err), unreachable: true}
			}
			if v.Metric == nil {
				v.Metric = map[string]string{}
			}
			res.samples = append(res.samples, sample{labels: v.Metric, value: f})
		}
	case "scalar":
		var sc [2]json.RawMessage
		if err := json.Unmarshal(data.Result, &sc); err != nil {
			return result{}, &queryError{msg: fmt.Sprintf("decoding the scalar of %q: %v", q, err), unreachable: true}
		}
		f, err := parseValue(sc[1])
		if err != nil {
			return result{}, &queryError{msg: fmt.Sprintf("query %q: %v", q, err), unreachable: true}
		}
		res.samples = []sample{{labels: map[string]string{}, value: f}}
		res.scalar = true
	default:
		return result{}, &queryError{msg: fmt.Sprintf("query %q: result type %q, want an instant vector or a scalar", q, data.ResultType)}
	}
	if len(r.Warnings) > 0 {
		note, err := s.judgeWarnings(view, r.Warnings)
		if err != nil {
			return result{}, err
		}
		res.note = note
	} else if view != nil {
		res.note = view.note
	}
	return res, nil
}

func parseValue(raw json.RawMessage) (float64, error) {
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return 0, fmt.Errorf("sample value %s is not a string", raw)
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %v", str, err)
	}
	return f, nil
}

// store is one entry of Thanos Query's /api/v1/stores.
type store struct {
	Name      string              `json:"name"`
	LastError *string             `json:"lastError"`
	LabelSets []map[string]string `json:"labelSets"`
	kind      string
}

func (st store) healthy() bool { return st.LastError == nil || *st.LastError == "" }

// storeView is the store list of one evaluation and what it says about
// the completeness of the data.
type storeView struct {
	stores  []store
	problem error  // an unhealthy store without a live peer: every query is partial
	note    string // unhealthy stores covered by peers
}

// storeView returns the Thanos store list of this evaluation (nil for
// Prometheus), fetched at most once, and resolves the auto kind.
func (s *evalState) storeView(ctx context.Context) (*storeView, error) {
	g := s.g
	kind := g.getKind()
	if kind == KindPrometheus {
		return nil, nil
	}
	s.storesOnce.Do(func() {
		r, err := s.do(ctx, http.MethodGet, "/api/v1/stores", nil)
		if err != nil {
			var qe *queryError
			if kind == KindAuto && errors.As(err, &qe) && qe.status == http.StatusNotFound {
				g.setKind(KindPrometheus)
				return
			}
			s.storesErr = fmt.Errorf("listing Thanos Query's stores (to judge partial responses): %w", err)
			return
		}
		var data map[string][]store
		if err := json.Unmarshal(r.Data, &data); err != nil {
			s.storesErr = &queryError{msg: fmt.Sprintf("decoding Thanos Query's /api/v1/stores: %v", err), unreachable: true}
			return
		}
		if kind == KindAuto {
			g.setKind(KindThanos)
		}
		v := &storeView{}
		kinds := make([]string, 0, len(data))
		for k := range data {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			for _, st := range data[k] {
				st.kind = k
				v.stores = append(v.stores, st)
			}
		}
		v.note, v.problem = v.judge(nil, g.cfg.ReplicaLabels)
		s.stores = v
	})
	if s.storesErr != nil {
		return nil, s.storesErr
	}
	if s.stores == nil {
		return nil, nil // auto resolved to Prometheus
	}
	if s.stores.problem != nil {
		return nil, s.stores.problem
	}
	return s.stores, nil
}

func (g *Gate) getKind() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.kind == "" {
		return KindAuto
	}
	return g.kind
}

func (g *Gate) setKind(k string) {
	g.mu.Lock()
	g.kind = k
	g.mu.Unlock()
}

var (
	labelSetRE = regexp.MustCompile(`\{[^{}]*\}`)
	labelRE    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	addrRE     = regexp.MustCompile(`Addr: (\S+)`)
)

// judgeWarnings decides whether a Thanos answer with warnings is complete:
// every warning must name a store (by its external labels or its address)
// that has a live replica peer which answered. Prometheus warnings are
// never explained.
func (s *evalState) judgeWarnings(view *storeView, warnings []string) (string, error) {
	if view == nil {
		return "", &queryError{msg: "Prometheus answered with warnings, so the data may be incomplete: " + strings.Join(warnings, "; ")}
	}
	var missing []map[string]string
	for _, w := range warnings {
		var sets []map[string]string
		for _, m := range labelSetRE.FindAllString(w, -1) {
			ls := map[string]string{}
			for _, kv := range labelRE.FindAllStringSubmatch(m, -1) {
				v, err := strconv.Unquote(`"` + kv[2] + `"`)
				if err != nil {
					v = kv[2]
				}
				ls[kv[1]] = v
			}
			if len(ls) > 0 {
				sets = append(sets, ls)
			}
		}
		if len(sets) == 0 {
			if m := addrRE.FindStringSubmatch(w); m != nil {
				for _, st := range view.stores {
					if st.Name == m[1] {
						sets = append(sets, st.LabelSets...)
					}
				}
			}
		}
		if len(sets) == 0 {
			return "", &queryError{msg: fmt.Sprintf("Thanos warned %q, which names no known store, so the data may be incomplete", w)}
		}
		missing = append(missing, sets...)
	}
	note, problem := view.judge(missing, s.g.cfg.ReplicaLabels)
	if problem != nil {
		return "", problem
	}
	return note, nil
}

// judge checks that every unhealthy store and every store in warned has a
// healthy peer: a store whose label set equals its own but for the replica
// labels, with a different replica, and that is itself neither unhealthy nor
// warned about.
func (v *storeView) judge(warned []map[string]string, replicaLabels []string) (string, error) {
	isReplica := map[string]bool{}
	for _, r := range replicaLabels {
		isReplica[r] = true
	}
	key := func(ls map[string]string) string {
		keys := make([]string, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var sb strings.Builder
		for _, k := range keys {
			if !isReplica[k] {
				fmt.Fprintf(&sb, "%s=%q,", k, ls[k])
			}
		}
		return sb.String()
	}
	full := func(ls map[string]string) string {
		keys := make([]string, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%q", k, ls[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	hasReplica := func(ls map[string]string) bool {
		for k := range ls {
			if isReplica[k] {
				return true
			}
		}
		return false
	}
	if len(v.stores) == 0 {
		return "", &queryError{msg: "Thanos Query lists no store: it can answer nothing"}
	}
	down := map[string]map[string]string{} // full label set -> labels
	for _, ls := range warned {
		down[full(ls)] = ls
	}
	for _, st := range v.stores {
		if st.healthy() {
			continue
		}
		if len(st.LabelSets) == 0 {
			return "", &queryError{msg: fmt.Sprintf("Thanos store %s (%s) is down (%s) and has no external labels, so no replica can stand in for it", st.Name, st.kind, *st.LastError)}
		}
		for _, ls := range st.LabelSets {
			down[full(ls)] = ls
		}
	}
	if len(down) == 0 {
		return "", nil
	}
	var notes []string
	names := make([]string, 0, len(down))
	for n := range down {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ls := down[name]
		if !hasReplica(ls) {
			return "", &queryError{msg: fmt.Sprintf("Thanos store %s is missing and has no replica label (%s), so no peer can stand in for it", name, strings.Join(replicaLabels, ", "))}
		}
		var peer string
		for _, st := range v.stores {
			if !st.healthy() {
				continue
			}
			for _, pls := range st.LabelSets {
				if _, isDown := down[full(pls)]; isDown {
					continue
				}
				if hasReplica(pls) && key(pls) == key(ls) {
					peer = full(pls)
				}
			}
		}
		if peer == "" {
			return "", &queryError{msg: fmt.Sprintf("partial response: Thanos store %s is missing and no live replica of it answered", name)}
		}
		notes = append(notes, fmt.Sprintf("store %s missing, covered by its replica %s", name, peer))
	}
	return strings.Join(notes, "; "), nil
}
