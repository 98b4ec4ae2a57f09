package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	answers     map[string]*answer // by query

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
// The same query asked twice in one evaluation (two checks reading
// ALERTS) is sent once; both get its answer.
func (s *evalState) query(ctx context.Context, q string) (result, error) {
	s.mu.Lock()
	if s.answers == nil {
		s.answers = map[string]*answer{}
	}
	a, ok := s.answers[q]
	if !ok {
		a = &answer{}
		s.answers[q] = a
	}
	s.mu.Unlock()
	a.once.Do(func() {
		a.res, a.err = s.queryRaw(ctx, q)
		if a.err != nil {
			s.markUnreachable(a.err)
		}
	})
	return a.res, a.err
}

// answer is a query's answer, shared within one evaluation.
type answer struct {
	once sync.Once
	res  result
	err  error
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
	var sels []selection
	if view != nil {
		form.Set("dedup", "true")
		form.Set("partial_response", "true")
		// A missing store this query needs, with no live peer, makes its
		// answer partial: no need to ask.
		sels = selectionsOf(q, s.at)
		if _, err := view.judge(nil, sels, s.g.cfg.ReplicaLabels); err != nil {
			return result{}, err
		}
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
		note, err := s.judgeWarnings(view, sels, r.Warnings)
		if err != nil {
			return result{}, err
		}
		res.note = note
	} else if view != nil {
		res.note, _ = view.judge(nil, sels, s.g.cfg.ReplicaLabels)
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
