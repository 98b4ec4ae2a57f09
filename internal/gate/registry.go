package gate

// How to add a check (the model is node_exporter's collector registry):
//
//  1. Write internal/gate/<name>.go. It holds the check's policy section, if
//     it has one (a type <Name>Policy with `Enabled *bool` when the check can
//     be turned off, documented field by field), and the check itself,
//     func (g *Gate) check<Name>(ctx context.Context, s *evalState) []CheckResult.
//     Run every query through s.query (it counts the request, applies the
//     evaluation time and judges Thanos' partial responses), build selectors
//     of the exporter's series with g.sel, and return one row per thing
//     judged, named "<name>" or "<name>/<part>". A failed query makes the
//     rows it feeds UNKNOWN (unknownRows); missing, NaN or partial data is
//     UNKNOWN, never PASS.
//  2. In an init() of that file, call registerCheck with the check's Name
//     (the row shown when it is disabled), its Order (Evaluate lists the
//     rows by ascending Order; pick an unused number between neighbours,
//     see the table below), the policy field that turns it off (Switch) with
//     Enabled reading it, and Defaults/Validate for its section.
//  3. Add the section's field to Policy (policy.go); strict decoding and the
//     error messages follow from the struct tags.
//  4. Put its tests in <name>_test.go against the fake API (fake_test.go),
//     and document the check and its fields in docs/gate.md.
//
// Orders in use: monitoring 10, alerts 20, nodes 30, nodes/groups 33, drain 40,
// capacity/ips 50, capacity/quotas 60, availability 70, probes 80, custom 1000.

import (
	"context"
	"fmt"
	"sort"
)

// checkDef is one registered check.
type checkDef struct {
	// Name is the check's name, and the name of its row when it is
	// disabled ("nodes", "capacity/ips").
	Name string
	// Order places the check's rows in every evaluation (ascending).
	Order int
	// Switch is the policy field that turns the check off, for the SKIP
	// row ("nodes.enabled: false").
	Switch string
	// Enabled reports whether the policy runs the check; nil: always.
	Enabled func(p *Policy) bool
	// Defaults fills in the defaults of the check's policy section.
	Defaults func(p *Policy)
	// Validate reports bad values of the section through bad(field, ...).
	Validate func(p *Policy, bad func(field, format string, args ...any))
	// Run evaluates the check once.
	Run func(g *Gate, ctx context.Context, s *evalState) []CheckResult
}

var registry []checkDef

// registerCheck adds a check; called from the init() of the check's file.
// A name or order used twice is a programming error and panics.
func registerCheck(d checkDef) {
	if d.Name == "" || d.Run == nil {
		panic("gate: registerCheck needs a name and a Run func")
	}
	for _, o := range registry {
		if o.Name == d.Name || o.Order == d.Order {
			panic(fmt.Sprintf("gate: check %q (order %d) collides with %q (order %d)", d.Name, d.Order, o.Name, o.Order))
		}
	}
	registry = append(registry, d)
	sort.Slice(registry, func(i, j int) bool { return registry[i].Order < registry[j].Order })
}

// checks returns the registered checks in order.
func checks() []checkDef { return registry }
