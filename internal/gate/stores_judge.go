package gate

// Partial responses: whether an answer that Thanos gave with a store
// missing (a warning, or an unhealthy store the query needs) is still
// complete. What is missing is judged store by store, and a missing store
// is covered only by a live replica peer that holds the whole time asked
// (docs/gate.md, "Partial responses: how the gate decides").

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	labelSetRE = regexp.MustCompile(`\{[^{}]*\}`)
	labelRE    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	addrRE     = regexp.MustCompile(`Addr: (\S+)`)
)

// warnedSet is one external label set a Thanos warning names as missing,
// with the address of the store the warning names ("" when it names none).
type warnedSet struct {
	labels map[string]string
	addr   string
}

// judgeWarnings decides whether a Thanos answer with warnings is complete:
// every warning must name a store (by its external labels or its address)
// that has a live peer which answered. A store named by a warning was
// selected by Thanos for this query, so it always matters. Prometheus
// warnings are never explained.
func (s *evalState) judgeWarnings(view *storeView, sel []selection, warnings []string) (string, error) {
	if view == nil {
		return "", &queryError{msg: "Prometheus answered with warnings, so the data may be incomplete: " + strings.Join(warnings, "; ")}
	}
	var missing []warnedSet
	for _, w := range warnings {
		addr := ""
		if m := addrRE.FindStringSubmatch(w); m != nil {
			addr = m[1]
		}
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
		if len(sets) == 0 && addr != "" {
			for _, st := range view.stores {
				if st.Name == addr {
					sets = append(sets, st.LabelSets...)
				}
			}
		}
		if len(sets) == 0 {
			return "", &queryError{msg: fmt.Sprintf("Thanos warned %q, which names no known store, so the data may be incomplete", w)}
		}
		for _, ls := range sets {
			missing = append(missing, warnedSet{labels: ls, addr: addr})
		}
	}
	note, problem := view.judge(missing, sel, s.g.cfg.ReplicaLabels)
	if problem != nil {
		return "", problem
	}
	return note, nil
}

// judge checks that every label set warned about, and every label set of
// an unhealthy store that the selections need, is still served by a
// healthy store that the selections need too (it holds data of the time
// asked) and that is not itself missing: a replica peer (the same type of
// store, the same labels but for the replica labels, another replica).
// Another store announcing the very same labels is no peer: store gateways
// sharded by block announce the same labels as a highly available pair
// (thanos docs/components/store.md, "Sharding"). Unhealthy stores
// the selections do not need are left alone.
//
// Missing is judged store by store, not label set by label set: one label
// set is usually announced by more than one store (a sidecar for the
// recent data and a store gateway for the uploaded blocks of the same
// Prometheus), and a down sidecar says nothing about the store gateway
// beside it, nor the other way round.
func (v *storeView) judge(warned []warnedSet, sels []selection, replicaLabels []string) (string, error) {
	note, used, err := v.judgeStores(warned, sels, replicaLabels)
	v.record(used, note, err)
	return note, err
}

// missingSet is one external label set that a query may lack, and the
// stores (indexes into storeView.stores) that may be the ones missing it;
// none when no store in the list announces it.
type missingSet struct {
	labels map[string]string
	stores map[int]bool
}

func (v *storeView) judgeStores(warned []warnedSet, sels []selection, replicaLabels []string) (string, []string, error) {
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
	hasReplica := func(ls map[string]string) bool {
		for k := range ls {
			if isReplica[k] {
				return true
			}
		}
		return false
	}
	// What each store may be asked for.
	neededSets := make([][]map[string]string, len(v.stores))
	isNeeded := make([]bool, len(v.stores))
	for i, st := range v.stores {
		neededSets[i], isNeeded[i] = st.needed(sels)
	}
	announces := func(i int, name string) bool {
		for _, ls := range v.stores[i].LabelSets {
			if fullLabels(ls) == name {
				return true
			}
		}
		return false
	}
	var used []string
	down := map[string]*missingSet{} // full label set -> what may be missing it
	add := func(ls map[string]string, i int) {
		name := fullLabels(ls)
		m := down[name]
		if m == nil {
			m = &missingSet{labels: ls, stores: map[int]bool{}}
			down[name] = m
		}
		if i >= 0 {
			m.stores[i] = true
		}
	}
	for _, w := range warned {
		name := fullLabels(w.labels)
		// The store the warning names by address; else every store that
		// announces the label set and that Thanos would have asked.
		var named, asked, any []int
		for i, st := range v.stores {
			if !announces(i, name) {
				continue
			}
			if w.addr != "" && st.Name == w.addr {
				named = append(named, i)
			}
			if isNeeded[i] {
				asked = append(asked, i)
			}
			any = append(any, i)
		}
		cands := named
		if len(cands) == 0 {
			cands = asked
		}
		if len(cands) == 0 {
			cands = any
		}
		if len(cands) == 0 {
			add(w.labels, -1)
		}
		for _, i := range cands {
			add(w.labels, i)
		}
	}
	for i, st := range v.stores {
		if st.healthy() || !isNeeded[i] {
			continue
		}
		used = append(used, st.Name)
		if len(st.LabelSets) == 0 {
			return "", used, &queryError{msg: fmt.Sprintf("Thanos store %s (%s) is down (%s) and has no external labels, so no replica can stand in for it", st.Name, st.kind, *st.LastError)}
		}
		for _, ls := range neededSets[i] {
			add(ls, i)
		}
	}
	if len(down) == 0 {
		return "", used, nil
	}
	// missingFrom reports whether store i may be missing label set name.
	missingFrom := func(i int, name string) bool {
		m := down[name]
		return m != nil && (len(m.stores) == 0 || m.stores[i])
	}
	var notes []string
	names := make([]string, 0, len(down))
	for n := range down {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m := down[name]
		// Every store that may be missing the set needs a peer of its
		// kind: a sidecar does not hold what a Thanos Ruler evaluates, nor
		// a store gateway the recent data of a sidecar, even with the same
		// labels. A set no listed store announces takes a peer of any kind.
		kinds := map[string]bool{}
		for i := range m.stores {
			kinds[v.stores[i].kind] = true
		}
		var kindList []string
		for k := range kinds {
			kindList = append(kindList, k)
		}
		sort.Strings(kindList)
		if len(kindList) == 0 {
			kindList = []string{""}
		}
		lo, hi, spans := v.wholeSpan(m, sels)
		var covered []string
		for _, kind := range kindList {
			peer, twin, short := "", "", ""
			for i, st := range v.stores {
				if !st.healthy() || m.stores[i] || (kind != "" && st.kind != kind) {
					continue
				}
				if spans && !st.holds(lo, hi) {
					// It answers for part of the range at most: a
					// replica restarted without its data, a store
					// gateway of other blocks.
					if short == "" {
						short = st.Name
					}
					continue
				}
				if announces(i, name) {
					// A store announcing the very labels missing is no
					// peer, for them or for their replicas: store gateways
					// sharded by block (--selector.relabel-config hashmod on
					// __block_id, Thanos' store sharding) announce the same
					// label sets and time range as a highly available pair,
					// but each holds other blocks of every replica; nothing
					// in the store list tells them apart.
					twin = st.Name
					continue
				}
				for _, pls := range neededSets[i] {
					pname := fullLabels(pls)
					if missingFrom(i, pname) || key(pls) != key(m.labels) {
						continue
					}
					if hasReplica(pls) && hasReplica(m.labels) && peer == "" {
						peer = pname
					}
				}
			}
			if kind == "receive" {
				// Thanos Receive spreads series over its hashring: another
				// receiver holds a missing one's series only with a
				// replication factor above 1 (thanos docs/components/
				// receive.md, "Replication"), which the store list does not
				// show, and its default is 1.
				return "", used, &queryError{msg: fmt.Sprintf("partial response: Thanos store %s is missing%s; a receiver's series are on other receivers only with a hashring replication factor above 1, which the store list does not show, so no replica stands in for it", name, kindNote(kind))}
			}
			if peer == "" {
				if !hasReplica(m.labels) {
					return "", used, &queryError{msg: fmt.Sprintf("Thanos store %s is missing and has no replica label (%s), so no peer can stand in for it%s", name, strings.Join(replicaLabels, ", "), kindNote(kind))}
				}
				if short != "" {
					return "", used, &queryError{msg: fmt.Sprintf("partial response: Thanos store %s is missing and no live replica of it holds the whole time asked (%s to %s; %s holds part of it at most)%s",
						name, time.UnixMilli(lo).UTC().Format(time.RFC3339), time.UnixMilli(hi).UTC().Format(time.RFC3339), short, kindNote(kind))}
				}
				twinNote := ""
				if twin != "" {
					twinNote = fmt.Sprintf("; %s announces the same labels, but stores with the same labels may hold different blocks (store gateways sharded by block), so it does not stand in", twin)
				}
				return "", used, &queryError{msg: fmt.Sprintf("partial response: Thanos store %s is missing and no live replica of it answered%s%s", name, kindNote(kind), twinNote)}
			}
			covered = append(covered, fmt.Sprintf("store %s missing, covered by its replica %s%s", name, peer, kindNote(kind)))
		}
		notes = append(notes, covered...)
	}
	return strings.Join(notes, "; "), used, nil
}

// peerSlack is how much less of a range than the missing store a peer may
// hold at either end: replicas scraping the same targets begin their data
// up to one scrape interval apart (Prometheus' default scrape_interval is
// 1m), and a sidecar reports its Prometheus' lowest timestamp in whole
// seconds (prometheus_tsdb_lowest_timestamp_seconds, thanos
// pkg/promclient LowestTimestamp).
const peerSlack = time.Minute

// holds reports whether the store's data range covers [lo, hi], but for
// peerSlack at either end.
func (st store) holds(lo, hi int64) bool {
	slack := peerSlack.Milliseconds()
	return (st.MinTime == nil || *st.MinTime <= lo+slack) && (st.MaxTime == nil || *st.MaxTime >= hi-slack)
}

// wholeSpan returns the time range [lo, hi] that the selections reading
// every sample of their range (whole) may have asked of label set m from
// the stores that may be missing it (each clipped to that store's data
// range; for a set no listed store announces, the selections' own), and
// whether there is any. A peer standing in for m must hold all of it:
// Thanos' deduplication fills a missing replica's series from the other
// replica only where that one has samples, so a replica whose data begins
// within a range query's range (restarted without its volume) answers for
// the end of the range alone, and increase() or max_over_time() over the
// rest of it is computed from nothing. Instant selectors read the latest
// sample within the lookback delta, which any replica that overlaps it
// has: no span.
func (v *storeView) wholeSpan(m *missingSet, sels []selection) (lo, hi int64, ok bool) {
	lo, hi = math.MaxInt64, math.MinInt64
	widen := func(a, b int64) {
		if a > b {
			return
		}
		lo, hi, ok = min(lo, a), max(hi, b), true
	}
	for _, sel := range sels {
		if !sel.whole || !labelSetMatches(m.labels, sel.matchers) {
			continue
		}
		if len(m.stores) == 0 {
			widen(sel.mint, sel.maxt)
			continue
		}
		for i := range m.stores {
			st := v.stores[i]
			if !st.overlaps(sel.mint, sel.maxt) {
				continue
			}
			a, b := sel.mint, sel.maxt
			if st.MinTime != nil {
				a = max(a, *st.MinTime)
			}
			if st.MaxTime != nil {
				b = min(b, *st.MaxTime)
			}
			widen(a, b)
		}
	}
	return lo, hi, ok
}

// kindNote names the type of store in a message ("" when unknown), from
// the keys of Thanos Query's /api/v1/stores (thanos pkg/component
// component.go: sidecar, store, rule, receive, query, debug).
func kindNote(kind string) string {
	switch kind {
	case "":
		return ""
	case "store":
		return " (store gateway)"
	case "rule":
		return " (ruler)"
	case "receive":
		return " (receiver)"
	}
	return " (" + kind + ")"
}

func fullLabels(ls map[string]string) string {
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

// storesRow is the monitoring/stores row of an evaluation through Thanos:
// how many stores are healthy, which missing ones were covered by a
// replica, which down ones no query needed, and UNKNOWN when a query needed
// a missing store that nothing covered (the rows of that query say so too).
func storesRow(v *storeView) CheckResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	healthy := 0
	var unneeded []string
	for _, st := range v.stores {
		if st.healthy() {
			healthy++
			continue
		}
		if !v.used[st.Name] {
			desc := st.Name
			if len(st.LabelSets) > 0 {
				var sets []string
				for _, ls := range st.LabelSets {
					sets = append(sets, fullLabels(ls))
				}
				desc += " " + strings.Join(sets, " ")
			}
			unneeded = append(unneeded, desc)
		}
	}
	r := CheckResult{
		Name: "monitoring/stores", Query: "GET /api/v1/stores",
		Value:     fmt.Sprintf("%d of %d stores healthy", healthy, len(v.stores)),
		Threshold: "every missing store that could hold an answer (its external labels match the query, its time range covers the time asked) has a live replica peer",
		Status:    Pass,
	}
	var notes []string
	for n := range v.notes {
		notes = append(notes, n)
	}
	sort.Strings(notes)
	if len(unneeded) > 0 {
		sort.Strings(unneeded)
		notes = append(notes, "down but holding nothing the queries asked for (external labels that do not match them, or data outside the time asked): "+strings.Join(unneeded, ", "))
	}
	r.Why = strings.Join(notes, "; ")
	if len(v.problems) > 0 {
		var ps []string
		for p := range v.problems {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		r.Status, r.Why = Unknown, strings.Join(ps, "; ")
	}
	return r
}
