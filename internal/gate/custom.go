package gate

// Custom checks: PromQL expressions of the policy with a condition.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
)

func init() {
	registerCheck(checkDef{
		Name:  "custom",
		Order: 1000,
		Validate: func(p *Policy, bad func(field, format string, args ...any)) {
			names := map[string]bool{}
			for i, c := range p.Custom {
				field := fmt.Sprintf("custom[%d]", i)
				if c.Name == "" {
					bad(field+".name", "missing")
				} else if names[c.Name] {
					bad(field+".name", "%q used twice", c.Name)
				}
				names[c.Name] = true
				if strings.TrimSpace(c.Query) == "" {
					bad(field+".query", "missing")
				}
				if c.Max == nil && c.Min == nil && c.Empty == nil {
					bad(field, "%q needs max, min or empty", c.Name)
				}
				if c.Empty != nil && *c.Empty && (c.Max != nil || c.Min != nil) {
					bad(field, "%q: empty: true cannot be combined with max or min", c.Name)
				}
				for k, v := range map[string]*float64{"max": c.Max, "min": c.Min} {
					if v != nil && math.IsNaN(*v) {
						bad(field+"."+k, "NaN is not a threshold")
					}
				}
				if c.Max != nil && c.Min != nil && *c.Min > *c.Max {
					bad(field, "%q: min %v above max %v", c.Name, *c.Min, *c.Max)
				}
			}
		},
		Run: (*Gate).checkCustom,
	})
}

// checkCustom runs every custom check of the policy, concurrently, in the
// policy's order.
func (g *Gate) checkCustom(ctx context.Context, s *evalState) []CheckResult {
	rows := make([][]CheckResult, len(g.policy.Custom))
	var wg sync.WaitGroup
	for i, c := range g.policy.Custom {
		wg.Go(func() { rows[i] = g.customCheck(c)(ctx, s) })
	}
	wg.Wait()
	var out []CheckResult
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// CustomCheck is a PromQL expression with a condition: every sample at most
// Max and at least Min, or (Empty) the result empty or not. "$node" in the
// query is replaced by the node's name; without a node such a check is
// skipped.
type CustomCheck struct {
	Name  string   `yaml:"name"`
	Query string   `yaml:"query"`
	Max   *float64 `yaml:"max"`
	Min   *float64 `yaml:"min"`
	Empty *bool    `yaml:"empty"`
}

// customCheck returns the check of one custom entry: row custom/<name>.
func (g *Gate) customCheck(c CustomCheck) func(context.Context, *evalState) []CheckResult {
	return func(ctx context.Context, s *evalState) []CheckResult {
		name := "custom/" + c.Name
		q := c.Query
		if strings.Contains(q, "$node") {
			if s.node == "" {
				// Not missing data: the check is about the node to
				// replace, and no node was asked about.
				return []CheckResult{skipRow(name, "the query uses $node and no node was given")}
			}
			q = strings.ReplaceAll(q, "$node", s.node)
		}
		r := CheckResult{Name: name, Query: q}
		var conds []string
		if c.Empty != nil {
			if *c.Empty {
				conds = append(conds, "empty")
			} else {
				conds = append(conds, "not empty")
			}
		}
		if c.Min != nil {
			conds = append(conds, ">= "+fmtNum(*c.Min))
		}
		if c.Max != nil {
			conds = append(conds, "<= "+fmtNum(*c.Max))
		}
		r.Threshold = strings.Join(conds, ", ")
		res, err := s.query(ctx, q)
		if err != nil {
			r.Status, r.Why = Unknown, err.Error()
			return []CheckResult{r}
		}
		r = withNote(r, res.note)
		n := len(res.samples)
		r.Value = fmt.Sprintf("%d series", n)
		if res.scalar || n == 1 {
			r.Value = fmtNum(res.samples[0].value)
		}
		if c.Empty != nil && *c.Empty {
			if n == 0 {
				r.Status, r.Value = Pass, "empty"
			} else {
				r.Status, r.Why = Fail, "want an empty result: "+list(describeSamples(res.samples))
			}
			return []CheckResult{r}
		}
		if n == 0 {
			r.Value = "empty"
			if c.Empty != nil { // empty: false
				r.Status, r.Why = Fail, "want a non-empty result"
			} else {
				r.Status, r.Why = Unknown, "empty result: nothing to compare with the thresholds (add empty: false/true to give empty a meaning)"
			}
			return []CheckResult{r}
		}
		var bad, nan []string
		for _, smp := range res.samples {
			switch {
			case isNaN(smp.value):
				nan = append(nan, describeSample(smp))
			case c.Max != nil && smp.value > *c.Max, c.Min != nil && smp.value < *c.Min:
				bad = append(bad, describeSample(smp))
			}
		}
		switch {
		case len(bad) > 0:
			r.Status, r.Why = Fail, "outside the thresholds: "+list(bad)
		case len(nan) > 0:
			r.Status, r.Why = Unknown, "NaN: "+list(nan)
		default:
			r.Status = Pass
		}
		return []CheckResult{r}
	}
}
