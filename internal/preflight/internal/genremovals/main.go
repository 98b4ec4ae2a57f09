// Command genremovals writes internal/preflight/removals_generated.go: the
// lifecycle of every built-in API group/version/kind that any published
// release of k8s.io/api, k8s.io/apiextensions-apiserver and
// k8s.io/kube-aggregator from v0.19.0 (the first with
// zz_generated.prerelease-lifecycle.go files) up to the minor of k8s.io/api
// in go.mod carried, read from those files (written upstream by
// k8s.io/code-generator's prerelease-lifecycle-gen; the API server reads the
// same methods in k8s.io/apiserver/pkg/endpoints/deprecation/deprecation.go).
//
// Usage (from the module root; make generate runs it):
//
//	go run ./internal/preflight/internal/genremovals [-out FILE] [-check]
//
// Each module version is fetched with `go mod download -json`, so the Go
// module cache is reused and the module proxy is only asked for what it does
// not hold. One module version per minor is read: v0.N.0 for every minor
// before go.mod's, and go.mod's own version for its minor (prerelease
// lifecycle tags are not changed in patch releases).
//
// For each group/version/kind the lifecycle of the latest module version
// that still carries it is kept, with that version's minor as LastModule. A
// kind that a later module dropped without ever stating a removal release
// (alpha types, mostly) is given the first release whose module no longer
// has it as its removal, marked RemovedInferred: it is removed by that
// release at the latest (it may have stopped being served earlier). List
// kinds are left out: their lifecycle is, by upstream convention, their
// item's, and the preflight table derives it.
//
// API packages without a prerelease lifecycle file (GA packages before
// 1.20, and alpha packages such as settings.k8s.io/v1alpha1 or
// batch/v2alpha1 that were dropped without ever getting one) are read too:
// the kinds their register.go registers (the &T{} arguments of
// AddKnownTypes; List and Options kinds left out) in the group of their
// doc.go's +groupName= or register.go's GroupName. Every module version's
// kinds, with or without lifecycle data, count as carried by it, so such a
// kind dropped before go.mod's minor is given the same inferred removal; one
// still carried by go.mod's minor gets a row with no lifecycle, which makes
// it known (never judged) to the preflight table.
//
// -check compares the file with what would be written and exits 1 when they
// differ.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// firstMinor is the first k8s.io/api minor with prerelease lifecycle files.
const firstMinor = 19

// modules are the modules read, with the folders (relative to the module
// root; "" for all of it) that hold their API packages.
var modules = []struct{ path, under string }{
	{"k8s.io/api", ""},
	{"k8s.io/apiextensions-apiserver", "pkg/apis"},
	{"k8s.io/kube-aggregator", "pkg/apis"},
}

var (
	versionDirRE = regexp.MustCompile(`^v\d+((alpha|beta)\d+)?$`)
	groupNameRE  = regexp.MustCompile(`(?m)^//\s*\+groupName=(\S*)\s*$`)
	apiModRE     = regexp.MustCompile(`(?m)^\s*k8s\.io/api\s+v0\.(\d+)\.(\d+)\s*$`)
)

type gvk struct{ group, version, kind string }

type release struct{ major, minor int }

// lifecycle is what one module version says of one kind.
type lifecycle struct {
	introduced, deprecated, removed release
	replacement                     gvk
}

// entry is one row of the output.
type entry struct {
	gvk
	lifecycle
	removedInferred bool
	lastModule      int
}

func main() {
	out := flag.String("out", "internal/preflight/removals_generated.go", "the file to write")
	gomod := flag.String("gomod", "go.mod", "the go.mod whose k8s.io/api minor is the last one read")
	check := flag.Bool("check", false, "compare -out with what would be written; exit 1 when it differs")
	jobs := flag.Int("j", 4, "module downloads at once")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("genremovals: ")

	b, err := os.ReadFile(*gomod)
	if err != nil {
		log.Fatal(err)
	}
	m := apiModRE.FindSubmatch(b)
	if m == nil {
		log.Fatalf("%s has no k8s.io/api v0.N.P requirement", *gomod)
	}
	last, _ := strconv.Atoi(string(m[1]))
	lastVersion := fmt.Sprintf("v0.%s.%s", m[1], m[2])

	began := time.Now()
	src, err := generate(last, lastVersion, *jobs)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("read %d module versions (1.%d to 1.%d) in %s", len(modules)*(last-firstMinor+1), firstMinor, last, time.Since(began).Round(time.Millisecond))
	if *check {
		old, err := os.ReadFile(*out)
		if err != nil {
			log.Fatal(err)
		}
		if !bytes.Equal(old, src) {
			log.Fatalf("%s is stale: run make generate", *out)
		}
		return
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

// generate reads every module version and returns the formatted file.
func generate(last int, lastVersion string, jobs int) ([]byte, error) {
	type job struct {
		module, under, version string
		minor                  int
	}
	var todo []job
	for minor := firstMinor; minor <= last; minor++ {
		v := fmt.Sprintf("v0.%d.0", minor)
		if minor == last {
			v = lastVersion
		}
		for _, mod := range modules {
			todo = append(todo, job{mod.path, mod.under, v, minor})
		}
	}
	results := make([]moduleKinds, len(todo))
	errs := make([]error, len(todo))
	sem := make(chan struct{}, max(jobs, 1))
	var wg sync.WaitGroup
	for i, j := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			dir, err := download(j.module, j.version)
			if err == nil {
				results[i], err = readModule(filepath.Join(dir, j.under))
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s@%s: %w", j.module, j.version, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	// Oldest first, so that a later module version's lifecycle wins.
	entries := map[gvk]*entry{}
	for i, j := range todo {
		if len(results[i].lifecycles) == 0 && j.module == "k8s.io/api" {
			return nil, fmt.Errorf("%s@%s has no prerelease lifecycle files", j.module, j.version)
		}
		for k, lc := range results[i].lifecycles {
			entries[k] = &entry{gvk: k, lifecycle: lc, lastModule: j.minor}
		}
		// Registered kinds the lifecycle files do not have: carried by
		// this module version, lifecycle (if an older one had any) kept.
		for k := range results[i].registered {
			if _, ok := results[i].lifecycles[k]; ok {
				continue
			}
			if e, ok := entries[k]; ok {
				e.lastModule = j.minor
				if lc, ok := results[i].documented[k]; ok {
					e.lifecycle = lc
				}
				continue
			}
			if strings.HasSuffix(k.kind, "Options") {
				continue
			}
			entries[k] = &entry{gvk: k, lifecycle: results[i].documented[k], lastModule: j.minor}
		}
	}
	var rows []*entry
	for _, e := range entries {
		if e.lastModule < last && e.removed == (release{}) {
			e.removed = release{1, e.lastModule + 1}
			e.removedInferred = true
		}
		rows = append(rows, e)
	}
	sort.Slice(rows, func(a, b int) bool {
		x, y := rows[a].gvk, rows[b].gvk
		if x.group != y.group {
			return x.group < y.group
		}
		if x.version != y.version {
			return x.version < y.version
		}
		return x.kind < y.kind
	})
	return render(rows, last)
}

// download fetches module@version into the module cache and returns its
// folder.
func download(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = os.TempDir() // outside any module: no go.mod is read or changed
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download: %s", info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download: %v: %s", err, stderr.String())
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download gave no folder")
	}
	return info.Dir, nil
}

// moduleKinds is what one module version carries: the lifecycle of every
// kind of its zz_generated.prerelease-lifecycle.go files, and every kind
// its API packages' register.go files register.
type moduleKinds struct {
	lifecycles map[gvk]lifecycle
	registered map[gvk]bool
	// documented are lifecycles that packages without a lifecycle file
	// state in their types' doc comments (readDocs).
	documented map[gvk]lifecycle
}

// readModule reads every zz_generated.prerelease-lifecycle.go and, in API
// version folders, every register.go under root. A register.go outside an
// API version folder registers internal types and is skipped.
func readModule(root string) (moduleKinds, error) {
	mk := moduleKinds{lifecycles: map[gvk]lifecycle{}, registered: map[gvk]bool{}, documented: map[gvk]lifecycle{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || (d.Name() != "zz_generated.prerelease-lifecycle.go" && d.Name() != "register.go") {
			return nil
		}
		dir := filepath.Dir(path)
		version := filepath.Base(dir)
		if !versionDirRE.MatchString(version) {
			if d.Name() == "register.go" {
				return nil
			}
			return fmt.Errorf("%s: folder %q is not an API version", path, version)
		}
		group, err := groupName(dir)
		if err != nil {
			return err
		}
		if d.Name() == "register.go" {
			if err := readDocs(dir, group, version, mk.documented); err != nil {
				return err
			}
			return readRegister(path, group, version, mk.registered)
		}
		return readLifecycle(path, group, version, mk.lifecycles)
	})
	return mk, err
}

// readRegister adds the kinds one register.go registers: the &T{}
// arguments, T a type of the package, of its AddKnownTypes calls; List
// kinds left out.
func readRegister(path, group, version string, kinds map[gvk]bool) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		return err
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		call, ok := node.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "AddKnownTypes" || len(call.Args) < 2 {
			return true
		}
		for _, arg := range call.Args[1:] {
			u, ok := arg.(*ast.UnaryExpr)
			if !ok || u.Op != token.AND {
				continue
			}
			cl, ok := u.X.(*ast.CompositeLit)
			if !ok {
				continue
			}
			id, ok := cl.Type.(*ast.Ident) // &metav1.Status{} and the like are not the package's
			if !ok {
				continue
			}
			n++
			if !strings.HasSuffix(id.Name, "List") {
				kinds[gvk{group, version, id.Name}] = true
			}
		}
		return true
	})
	if n == 0 {
		return fmt.Errorf("%s: no &T{} argument of AddKnownTypes found", path)
	}
	return nil
}

// groupName returns the API group of the package in dir: the +groupName=
// tag of its doc.go, else the GroupName constant of its register.go.
func groupName(dir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "doc.go")); err == nil {
		if m := groupNameRE.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, "register.go"), nil, 0)
	if err != nil {
		return "", fmt.Errorf("%s: no +groupName= in doc.go and %v", dir, err)
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name == "GroupName" && i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						return strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	return "", fmt.Errorf("%s: no +groupName= in doc.go nor GroupName in register.go", dir)
}

// readLifecycle adds the kinds of one zz_generated.prerelease-lifecycle.go.
func readLifecycle(path, group, version string, kinds map[gvk]lifecycle) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		return err
	}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || len(fd.Recv.List) != 1 || fd.Body == nil {
			continue
		}
		kind := receiverType(fd.Recv.List[0].Type)
		if kind == "" || strings.HasSuffix(kind, "List") {
			continue
		}
		if len(fd.Body.List) != 1 {
			return fmt.Errorf("%s: %s.%s: not a single return", fset.Position(fd.Pos()), kind, fd.Name.Name)
		}
		ret, ok := fd.Body.List[0].(*ast.ReturnStmt)
		if !ok {
			return fmt.Errorf("%s: %s.%s: not a return", fset.Position(fd.Pos()), kind, fd.Name.Name)
		}
		k := gvk{group, version, kind}
		lc := kinds[k]
		switch fd.Name.Name {
		case "APILifecycleIntroduced", "APILifecycleDeprecated", "APILifecycleRemoved":
			r, err := releaseOf(ret)
			if err != nil {
				return fmt.Errorf("%s: %s.%s: %v", fset.Position(fd.Pos()), kind, fd.Name.Name, err)
			}
			switch fd.Name.Name {
			case "APILifecycleIntroduced":
				lc.introduced = r
			case "APILifecycleDeprecated":
				lc.deprecated = r
			default:
				lc.removed = r
			}
		case "APILifecycleReplacement":
			r, err := replacementOf(ret)
			if err != nil {
				return fmt.Errorf("%s: %s.%s: %v", fset.Position(fd.Pos()), kind, fd.Name.Name, err)
			}
			lc.replacement = r
		default:
			continue
		}
		kinds[k] = lc
	}
	return nil
}

// receiverType returns T of a receiver *T or T.
func receiverType(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// releaseOf reads `return 1, 22`.
func releaseOf(ret *ast.ReturnStmt) (release, error) {
	if len(ret.Results) != 2 {
		return release{}, fmt.Errorf("want two results")
	}
	var n [2]int
	for i, r := range ret.Results {
		lit, ok := r.(*ast.BasicLit)
		if !ok || lit.Kind != token.INT {
			return release{}, fmt.Errorf("result %d is not an integer literal", i+1)
		}
		v, err := strconv.Atoi(lit.Value)
		if err != nil {
			return release{}, err
		}
		n[i] = v
	}
	return release{n[0], n[1]}, nil
}

// replacementOf reads `return schema.GroupVersionKind{Group: "g", Version:
// "v", Kind: "K"}`.
func replacementOf(ret *ast.ReturnStmt) (gvk, error) {
	if len(ret.Results) != 1 {
		return gvk{}, fmt.Errorf("want one result")
	}
	cl, ok := ret.Results[0].(*ast.CompositeLit)
	if !ok {
		return gvk{}, fmt.Errorf("not a composite literal")
	}
	var g gvk
	for _, el := range cl.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			return gvk{}, fmt.Errorf("unkeyed field")
		}
		key, ok := kv.Key.(*ast.Ident)
		lit, ok2 := kv.Value.(*ast.BasicLit)
		if !ok || !ok2 || lit.Kind != token.STRING {
			return gvk{}, fmt.Errorf("field is not Name: \"literal\"")
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return gvk{}, err
		}
		switch key.Name {
		case "Group":
			g.group = s
		case "Version":
			g.version = s
		case "Kind":
			g.kind = s
		default:
			return gvk{}, fmt.Errorf("unknown field %s", key.Name)
		}
	}
	return g, nil
}

// render writes the Go file.
func render(rows []*entry, last int) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by genremovals from the zz_generated.prerelease-lifecycle.go and register.go files of k8s.io/api, k8s.io/apiextensions-apiserver and k8s.io/kube-aggregator v0.%d to v0.%d. DO NOT EDIT.\n\n", firstMinor, last)
	b.WriteString("package preflight\n\n")
	b.WriteString("import \"k8s.io/apimachinery/pkg/runtime/schema\"\n\n")
	fmt.Fprintf(&b, "// knownAPIsFirst and knownAPIsLast are the first and last Kubernetes\n// releases whose modules KnownAPIs was read from.\nvar knownAPIsFirst, knownAPIsLast = Version{1, %d}, Version{1, %d}\n\n", firstMinor, last)
	fmt.Fprintf(&b, "// KnownAPIs is every group/version/kind (List kinds left out) with a\n// prerelease lifecycle in a release from 1.%d to 1.%d, and every kind\n// registered without one (Options kinds left out too) by such a release,\n// sorted by group, version and kind; see KnownAPI.\n", firstMinor, last)
	b.WriteString("var KnownAPIs = []KnownAPI{\n")
	rel := func(r release) string {
		if r == (release{}) {
			return "{}"
		}
		return fmt.Sprintf("{%d, %d}", r.major, r.minor)
	}
	for _, e := range rows {
		fmt.Fprintf(&b, "\t{Group: %q, Version: %q, Kind: %q", e.group, e.version, e.kind)
		if e.introduced != (release{}) {
			fmt.Fprintf(&b, ", Introduced: Version%s", rel(e.introduced))
		}
		if e.deprecated != (release{}) {
			fmt.Fprintf(&b, ", Deprecated: Version%s", rel(e.deprecated))
		}
		if e.removed != (release{}) {
			fmt.Fprintf(&b, ", Removed: Version%s", rel(e.removed))
		}
		if e.removedInferred {
			b.WriteString(", RemovedInferred: true")
		}
		if e.replacement != (gvk{}) {
			fmt.Fprintf(&b, ", Replacement: schema.GroupVersionKind{Group: %q, Version: %q, Kind: %q}", e.replacement.group, e.replacement.version, e.replacement.kind)
		}
		fmt.Fprintf(&b, ", LastModule: Version{1, %d}},\n", e.lastModule)
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

// Doc comments of API types that have no lifecycle file but state their
// deprecation and the release that stops serving them, as
// rbac.authorization.k8s.io/v1alpha1's do: "Deprecated in v1.17 in favor
// of rbac.authorization.k8s.io/v1 Role, and will no longer be served in
// v1.22." (the API server stopped serving it then, although k8s.io/api
// still carries the types).
var (
	docDeprecatedRE = regexp.MustCompile(`Deprecated in v(\d+)\.(\d+)`)
	docRemovedRE    = regexp.MustCompile(`no longer be served in v(\d+)\.(\d+)`)
	docFavorRE      = regexp.MustCompile(`in favor of ([a-z0-9.-]*)/?(v[a-z0-9]+) ([A-Z][A-Za-z]+)`)
)

// readDocs adds the lifecycles the doc comments of the package's type
// declarations in dir state (see docRemovedRE); generated and test files
// are skipped.
func readDocs(dir, group, version string, out map[gvk]lifecycle) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	for _, path := range files {
		base := filepath.Base(path)
		if strings.HasPrefix(base, "zz_generated") || strings.HasSuffix(base, "_test.go") || strings.HasPrefix(base, "generated.") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE || len(gd.Specs) != 1 || gd.Doc == nil {
				continue
			}
			ts := gd.Specs[0].(*ast.TypeSpec)
			doc := strings.Join(strings.Fields(gd.Doc.Text()), " ")
			rm := docRemovedRE.FindStringSubmatch(doc)
			if rm == nil || strings.HasSuffix(ts.Name.Name, "List") {
				continue
			}
			var lc lifecycle
			lc.removed = release{atoi(rm[1]), atoi(rm[2])}
			if dm := docDeprecatedRE.FindStringSubmatch(doc); dm != nil {
				lc.deprecated = release{atoi(dm[1]), atoi(dm[2])}
			}
			if fm := docFavorRE.FindStringSubmatch(doc); fm != nil {
				lc.replacement = gvk{fm[1], fm[2], fm[3]}
			}
			out[gvk{group, version, ts.Name.Name}] = lc
		}
	}
	return nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
