package gate

// The Thanos store list: which stores Thanos Query fans out to, and whether
// a partial answer (a store missing) can still be trusted.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

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

// storesRow is the monitoring/stores row of an evaluation through Thanos.
func storesRow(v *storeView) CheckResult {
	healthy := 0
	for _, st := range v.stores {
		if st.healthy() {
			healthy++
		}
	}
	r := CheckResult{
		Name: "monitoring/stores", Query: "GET /api/v1/stores",
		Value:     fmt.Sprintf("%d of %d stores healthy", healthy, len(v.stores)),
		Threshold: "every missing store has a live replica peer",
		Status:    Pass, Why: v.note,
	}
	if v.problem != nil {
		r.Status, r.Why = Unknown, v.problem.Error()
	}
	return r
}
