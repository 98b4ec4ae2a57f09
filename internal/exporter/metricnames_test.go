package exporter

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestMetricNamesCoverEverySourceName catches a descriptor added to a
// collector without being added to its package's Describe: every
// "upgradeguard_..." string literal in the collectors' and awsapi's non-test
// sources must be a name MetricNames returns.
func TestMetricNamesCoverEverySourceName(t *testing.T) {
	names, err := MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	// The Set builds its names with BuildFQName; the rest are literals.
	for _, want := range []string{"upgradeguard_collector_success", "upgradeguard_collector_duration_seconds", "upgradeguard_build_info"} {
		if !known[want] {
			t.Errorf("MetricNames lacks %s", want)
		}
	}
	name := regexp.MustCompile(`^upgradeguard_[a-z0-9_]+$`)
	var files []string
	for _, pattern := range []string{"../../collectors/*/*.go", "../awsapi/*.go"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	found := 0
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !name.MatchString(s) {
				return true
			}
			found++
			if !known[s] {
				t.Errorf("%s: metric %s is not described by its package's Describe", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
	if found < 25 {
		t.Errorf("found only %d metric names in the collectors' sources; is the glob wrong?", found)
	}
	if !slices.IsSorted(names) {
		t.Error("MetricNames is not sorted")
	}
}
