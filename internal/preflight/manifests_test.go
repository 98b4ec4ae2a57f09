package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (path relative to dir -> content).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const removedPDB = `apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec: {maxUnavailable: 1}
`

const deprecatedSVM = `apiVersion: storagemigration.k8s.io/v1beta1
kind: StorageVersionMigration
metadata: {name: migrate}
`

const currentDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
`

// findingsBy indexes findings by severity and object.
func findingsBy(fs []Finding) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range fs {
		m[string(f.Severity)+" "+f.Object] = f
	}
	return m
}

func TestCheckManifests(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		// A multi-document file: removed, current, empty, deprecated.
		"app/multi.yaml": removedPDB + "---\n" + currentDeployment + "---\n# only a comment\n---\n" + deprecatedSVM,
		// A JSON List with a removed Ingress and a current Service.
		"app/nested/list.json": `{"apiVersion": "v1", "kind": "List", "items": [
			{"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "front", "namespace": "shop"}},
			{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front", "namespace": "shop"}}]}`,
		// The second document is malformed; the third is still judged.
		"app/nested/deeper/broken.yml": currentDeployment + "---\nkind: [unclosed\n---\n" + removedPDB,
		// Not Kubernetes objects: skipped, not unknown.
		"chart/Chart.yaml":  "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/values.yaml": "replicas: 3\n",
		// Not a manifest file name; hidden directories are skipped.
		"app/README.md":       removedPDB,
		".git/config.yaml":    removedPDB,
		"app/.hidden/x.yaml":  removedPDB,
		"crd/widget-old.yaml": "apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w}\n",
	})
	files, err := ManifestFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, f := range files {
		r, _ := filepath.Rel(dir, f)
		rel = append(rel, r)
	}
	if got, want := strings.Join(rel, " "), "app/multi.yaml app/nested/deeper/broken.yml app/nested/list.json chart/Chart.yaml chart/values.yaml crd/widget-old.yaml"; got != want {
		t.Errorf("files = %s\nwant    %s", got, want)
	}
	table := NewAPITable()
	table.AddCRDVersion(gvk("example.com/v1beta1", "Widget"), "widgets", "", gvk("example.com/v1", "Widget"))
	fs := CheckManifests(files, table, Version{1, 37})
	by := findingsBy(fs)
	multi := filepath.Join(dir, "app/multi.yaml")
	broken := filepath.Join(dir, "app/nested/deeper/broken.yml")
	list := filepath.Join(dir, "app/nested/list.json")

	for key, source := range map[string]string{
		"warning storagemigration.k8s.io/v1beta1 StorageVersionMigration migrate": multi + " document 4",
		"blocker extensions/v1beta1 Ingress shop/front":                           list + " document 1 item 1",
		"warning example.com/v1beta1 Widget w":                                    filepath.Join(dir, "crd/widget-old.yaml") + " document 1",
		"unknown " + broken:                                                       broken + " document 2",
	} {
		f, ok := by[key]
		if !ok {
			t.Errorf("no finding %q in %+v", key, fs)
			continue
		}
		if f.Source != source {
			t.Errorf("%s: source %q, want %q", key, f.Source, source)
		}
	}
	pdb := by["blocker policy/v1beta1 PodDisruptionBudget shop/web"]
	if pdb.RemovedRelease != "1.25" || pdb.Replacement != "policy/v1 PodDisruptionBudget" {
		t.Errorf("PDB finding = %+v", pdb)
	}
	if u := by["unknown "+broken]; !strings.Contains(u.Message, "malformed") {
		t.Errorf("malformed document finding: %q", u.Message)
	}
	// The PDB after the malformed document was judged too.
	n := 0
	for _, f := range fs {
		if f.Object == "policy/v1beta1 PodDisruptionBudget shop/web" {
			n++
			if f.Source != multi+" document 1" && f.Source != broken+" document 3" {
				t.Errorf("PDB source %q", f.Source)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d PDB findings, want 2 (multi.yaml and broken.yml)", n)
	}
	for _, f := range fs {
		if strings.Contains(f.Object, "Deployment") || strings.Contains(f.Object, "Service") || strings.Contains(f.Source, "Chart.yaml") || strings.Contains(f.Source, "values.yaml") {
			t.Errorf("unexpected finding %+v", f)
		}
	}
	info := by["info manifests"]
	if info.Message != "read 6 files, 11 documents, 8 objects" {
		t.Errorf("info: %q", info.Message)
	}
	r := Report{Target: Version{1, 37}, Findings: fs}
	if r.ExitCode() != ExitBlockers {
		t.Errorf("exit code %d, want %d", r.ExitCode(), ExitBlockers)
	}
}

func TestCheckManifestsDeprecatedOnly(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"svm.yaml": deprecatedSVM, "deploy.json": `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}`})
	files, err := ManifestFiles([]string{filepath.Join(dir, "svm.yaml"), filepath.Join(dir, "deploy.json")})
	if err != nil {
		t.Fatal(err)
	}
	r := Report{Target: Version{1, 37}, Findings: CheckManifests(files, NewAPITable(), Version{1, 37})}
	if r.ExitCode() != ExitWarnings {
		t.Errorf("exit code %d, want %d (warnings only): %+v", r.ExitCode(), ExitWarnings, r.Findings)
	}
	// The same file for a target before the deprecation is clean.
	r = Report{Target: Version{1, 36}, Findings: CheckManifests(files, NewAPITable(), Version{1, 36})}
	if r.ExitCode() != ExitClean {
		t.Errorf("exit code %d at 1.36, want clean: %+v", r.ExitCode(), r.Findings)
	}
}

func TestManifestFilesMissingPath(t *testing.T) {
	_, err := ManifestFiles([]string{filepath.Join(t.TempDir(), "nope.yaml")})
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error %v does not name the path", err)
	}
}

func TestParseManifestsBadKinds(t *testing.T) {
	_, _, errs := parseManifests([]byte("apiVersion: 3\nkind: Deployment\n---\napiVersion: a/b/c\nkind: X\n"))
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "document 1") || !strings.Contains(errs[1].Error(), "document 2") {
		t.Errorf("errors %v", errs)
	}
}

// The inputs of the removed-API report: a CRD and an APIService of v1beta1 (groups
// client-go's scheme does not have, both removed in 1.22) and a
// policy/v1beta1 PodSecurityPolicy (a type k8s.io/api has dropped, removed
// in 1.25) gave no finding at any target.
const (
	crdV1beta1 = `apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec: {group: example.com, version: v1, names: {kind: Widget, plural: widgets}, scope: Namespaced}
`
	apiServiceV1beta1 = `apiVersion: apiregistration.k8s.io/v1beta1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec: {group: metrics.k8s.io, version: v1beta1, service: {name: metrics-server, namespace: kube-system}}
`
	pspV1beta1 = `apiVersion: policy/v1beta1
kind: PodSecurityPolicy
metadata: {name: restricted}
spec: {privileged: false}
`
)

func TestCheckManifestsDroppedAPIs(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"crd.yaml": crdV1beta1, "apiservice.yaml": apiServiceV1beta1, "psp.yaml": pspV1beta1})
	files, err := ManifestFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	const (
		crd = "apiextensions.k8s.io/v1beta1 CustomResourceDefinition widgets.example.com"
		svc = "apiregistration.k8s.io/v1beta1 APIService v1beta1.metrics.k8s.io"
		psp = "policy/v1beta1 PodSecurityPolicy restricted"
	)
	for _, c := range []struct {
		target        Version
		crd, svc, psp Severity
		exit          int
	}{
		{Version{1, 15}, "", "", "", ExitClean},
		// Deprecated since 1.16 (CRD) and 1.19 (APIService).
		{Version{1, 18}, Warning, "", "", ExitWarnings},
		{Version{1, 21}, Warning, Warning, Warning, ExitWarnings},
		{Version{1, 22}, Blocker, Blocker, Warning, ExitBlockers},
		{Version{1, 24}, Blocker, Blocker, Warning, ExitBlockers},
		{Version{1, 25}, Blocker, Blocker, Blocker, ExitBlockers},
		{Version{1, 37}, Blocker, Blocker, Blocker, ExitBlockers},
	} {
		fs := CheckManifests(files, NewAPITable(), c.target)
		by := findingsBy(fs)
		for obj, want := range map[string]Severity{crd: c.crd, svc: c.svc, psp: c.psp} {
			var got Severity
			for _, sev := range []Severity{Blocker, Warning, Info} {
				if _, ok := by[string(sev)+" "+obj]; ok {
					got = sev
				}
			}
			if got != want {
				t.Errorf("target %s: %s: severity %q, want %q", c.target, obj, got, want)
			}
		}
		if f := by["blocker "+crd]; c.crd == Blocker && (f.RemovedRelease != "1.22" || f.Replacement != "apiextensions.k8s.io/v1 CustomResourceDefinition") {
			t.Errorf("target %s: CRD finding %+v", c.target, f)
		}
		if f := by["blocker "+psp]; c.psp == Blocker && f.RemovedRelease != "1.25" {
			t.Errorf("target %s: PSP finding %+v", c.target, f)
		}
		if r := (Report{Target: c.target, Findings: fs}); r.ExitCode() != c.exit {
			t.Errorf("target %s: exit code %d, want %d", c.target, r.ExitCode(), c.exit)
		}
	}
}
