package gate

// The Thanos store list: which stores Thanos Query fans out to, and whether
// a partial answer (a store missing) can still be trusted.
//
// A missing store matters to a query only when Thanos would ask it for that
// query: Thanos Query's proxy skips a store whose time range
// [minTime, maxTime] does not overlap the time the selector reads, or none
// of whose external label sets match the selector's matchers (a matcher on
// a label the set does not have does not exclude it), as
// github.com/thanos-io/thanos pkg/store/proxy.go storeMatches and
// labelSetsMatch do. The gate applies the same rule to each query, with the
// time range the PromQL engine reads for it (prometheus promql/engine.go
// FindMinMaxTime): a down sidecar of another cluster, or a store gateway
// whose blocks end before the evaluation time, cannot hold the answer and
// does not make it unknown.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// lookbackDelta is how far back an instant selector reads: Thanos Query's
// and Prometheus' default --query.lookback-delta.
const lookbackDelta = 5 * time.Minute

// store is one entry of Thanos Query's /api/v1/stores. MinTime and
// MaxTime are the store's data range in milliseconds (nil when Thanos does
// not say: the store may hold anything).
type store struct {
	Name      string              `json:"name"`
	LastError *string             `json:"lastError"`
	LabelSets []map[string]string `json:"labelSets"`
	MinTime   *int64              `json:"minTime"`
	MaxTime   *int64              `json:"maxTime"`
	kind      string
}

func (st store) healthy() bool { return st.LastError == nil || *st.LastError == "" }

// overlaps reports whether the store may hold data in [mint, maxt].
func (st store) overlaps(mint, maxt int64) bool {
	if st.MinTime == nil || st.MaxTime == nil {
		return true
	}
	return !(mint > *st.MaxTime || maxt < *st.MinTime)
}

// selection is what one selector of a query asks of the stores: its
// matchers and the time range it reads, in milliseconds. whole is whether
// it reads every sample of the range (a range selector, or a selector
// inside a subquery), not only the latest one within the lookback delta.
type selection struct {
	matchers   []*labels.Matcher
	mint, maxt int64
	whole      bool
}

// promqlParser parses the gate's queries, with the default options.
var promqlParser = parser.NewParser(parser.Options{})

// everything is the selection of a query the gate cannot parse: every store
// may matter.
var everything = []selection{{mint: math.MinInt64, maxt: math.MaxInt64}}

// selectionsOf returns the selectors of q evaluated at at, with the time
// range each reads: an instant selector the lookback delta before at, a
// range selector its range, both moved by offsets and enclosing subqueries
// (the rule of prometheus promql/engine.go getTimeRangesForSelector). A
// query that does not parse, or uses the @ modifier, may read anything.
func selectionsOf(q string, at time.Time) []selection {
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return everything
	}
	var out []selection
	var evalRange time.Duration
	conservative := false
	atMs := at.UnixMilli()
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.MatrixSelector:
			evalRange = n.Range
		case *parser.VectorSelector:
			if n.Timestamp != nil || n.StartOrEnd != 0 {
				conservative = true
			}
			var back time.Duration
			whole := evalRange > 0
			for _, p := range path {
				if sq, ok := p.(*parser.SubqueryExpr); ok {
					if sq.Timestamp != nil || sq.StartOrEnd != 0 {
						conservative = true
					}
					back += sq.OriginalOffset + sq.Range
					whole = true
				}
			}
			offset := n.OriginalOffset
			for _, p := range path {
				if sq, ok := p.(*parser.SubqueryExpr); ok {
					offset += sq.OriginalOffset
				}
			}
			reach := lookbackDelta
			if evalRange > 0 {
				reach = evalRange
			}
			back += n.OriginalOffset + reach
			out = append(out, selection{matchers: n.LabelMatchers, mint: atMs - back.Milliseconds(), maxt: atMs - offset.Milliseconds(), whole: whole})
			evalRange = 0
		}
		return nil
	})
	if conservative || len(out) == 0 {
		return everything
	}
	return out
}

// labelSetMatches is Thanos' rule for one external label set: every
// matcher whose label the set has must match it.
func labelSetMatches(ls map[string]string, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if v, ok := ls[m.Name]; ok && v != "" && !m.Matches(v) {
			return false
		}
	}
	return true
}

// needed returns the label sets of st that some selection may read from
// it, and whether it is needed at all (a store without label sets matches
// any matchers, as in Thanos).
func (st store) needed(sels []selection) ([]map[string]string, bool) {
	var sets []map[string]string
	seen := map[int]bool{}
	needed := false
	for _, sel := range sels {
		if !st.overlaps(sel.mint, sel.maxt) {
			continue
		}
		if len(st.LabelSets) == 0 {
			needed = true
			continue
		}
		for i, ls := range st.LabelSets {
			if labelSetMatches(ls, sel.matchers) {
				needed = true
				if !seen[i] {
					seen[i] = true
					sets = append(sets, ls)
				}
			}
		}
	}
	return sets, needed
}

// storeView is the store list of one evaluation and what the queries
// found about the completeness of their data.
type storeView struct {
	stores []store
	empty  error // no store at all: every query fails

	mu       sync.Mutex
	notes    map[string]bool // stores missing and covered, for the stores row
	problems map[string]bool // stores missing and not covered
	used     map[string]bool // unhealthy stores some query needed, by name
}

func (v *storeView) record(used []string, note string, problem error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, u := range used {
		v.used[u] = true
	}
	for _, n := range strings.Split(note, "; ") {
		if n != "" {
			v.notes[n] = true
		}
	}
	if problem != nil {
		v.problems[problem.Error()] = true
	}
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
		v := &storeView{notes: map[string]bool{}, problems: map[string]bool{}, used: map[string]bool{}}
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
		if len(v.stores) == 0 {
			v.empty = &queryError{msg: "Thanos Query lists no store: it can answer nothing"}
		}
		s.stores = v
	})
	if s.storesErr != nil {
		return nil, s.storesErr
	}
	if s.stores == nil {
		return nil, nil // auto resolved to Prometheus
	}
	if s.stores.empty != nil {
		return nil, s.stores.empty
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
