package alerts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// writeRuleFile writes RuleFileYAML(o) as dir/rules.yaml, the name the test
// files in testdata/ load.
func writeRuleFile(t *testing.T, dir string, o Options) string {
	t.Helper()
	b, err := RuleFileYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// optionSets are the defaults and options that change every selector and
// the cluster label, with promtool's 2.42 reading the result either way.
func optionSets() map[string]Options {
	custom := DefaultOptions()
	custom.ExporterJob, custom.AWSNodeJob, custom.KubeStateMetricsJob = "monitoring/upgradeguard-exporter", "kube-system/aws-node", "ksm"
	custom.ClusterLabel = "k8s_cluster"
	custom.APIServerJob, custom.RemovedAPIRelease = "kube-apiserver", "1.40"
	custom.RunbookBaseURL = "https://runbooks.example.com/upgradeguard"
	custom.For = map[string]time.Duration{"UpgradeGuardKubeletVersionsMixed": 12 * time.Hour}
	return map[string]Options{"default": DefaultOptions(), "custom": custom}
}

func TestPromtoolCheckRules(t *testing.T) {
	bin := testbed.Promtool(t)
	for name, o := range optionSets() {
		path := writeRuleFile(t, t.TempDir(), o)
		out, err := exec.Command(bin, "check", "rules", path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: promtool check rules: %v\n%s", name, err, out)
		}
		n := len(List(o)) + len(Records(o))
		if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(string(out), want) {
			t.Errorf("%s: promtool did not find all %d rules:\n%s", name, n, out)
		}
	}
}

// promtoolTest is the part of a promtool unit test file this package reads
// to check coverage.
type promtoolTest struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name       string `json:"name"`
		AlertTests []struct {
			EvalTime  string `json:"eval_time"`
			AlertName string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no promtool test files in testdata/")
	}
	return files
}

// TestPromtoolTestRules runs the unit tests of testdata/ against the rules
// generated with the default options.
func TestPromtoolTestRules(t *testing.T) {
	bin := testbed.Promtool(t)
	dir := t.TempDir()
	writeRuleFile(t, dir, DefaultOptions())
	args := []string{"test", "rules"}
	for _, f := range testFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, dst)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestEveryAlertIsTestedFiringAndQuiet: for every alert (name and
// severity), some promtool case expects it to fire, and some case of its
// name expects it not to (exp_alerts without that severity: before its
// `for`, or under its threshold). The test files load the generated rules
// and name only alerts that exist.
func TestEveryAlertIsTestedFiringAndQuiet(t *testing.T) {
	type key struct{ name, severity string }
	fires, quiet := map[key]int{}, map[key]int{}
	severities := map[string][]string{}
	for _, a := range List(DefaultOptions()) {
		severities[a.Name] = append(severities[a.Name], a.Severity)
	}
	for _, f := range testFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pt promtoolTest
		if err := yaml.Unmarshal(b, &pt); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.Equal(pt.RuleFiles, []string{"rules.yaml"}) {
			t.Errorf("%s: rule_files %v, want [rules.yaml], the generated file", f, pt.RuleFiles)
		}
		for _, tc := range pt.Tests {
			for _, at := range tc.AlertTests {
				sevs, ok := severities[at.AlertName]
				if !ok {
					t.Errorf("%s: %q at %s: no such alert", f, at.AlertName, at.EvalTime)
					continue
				}
				expected := map[string]bool{}
				for _, e := range at.ExpAlerts {
					s := e.ExpLabels["severity"]
					if !slices.Contains(sevs, s) {
						t.Errorf("%s: %q at %s expects severity %q, which the alert does not have", f, at.AlertName, at.EvalTime, s)
					}
					expected[s] = true
				}
				for _, s := range sevs {
					if expected[s] {
						fires[key{at.AlertName, s}]++
					} else {
						quiet[key{at.AlertName, s}]++
					}
				}
			}
		}
	}
	for name, sevs := range severities {
		for _, s := range sevs {
			k := key{name, s}
			if fires[k] == 0 {
				t.Errorf("%s (%s): no promtool case where it fires", name, s)
			}
			// The watchdog is never quiet.
			if quiet[k] == 0 && name != WatchdogAlert {
				t.Errorf("%s (%s): no promtool case where it stays quiet", name, s)
			}
		}
	}
}
