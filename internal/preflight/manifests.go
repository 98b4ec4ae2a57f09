package preflight

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifestObject is one Kubernetes object read from a manifest.
type manifestObject struct {
	gvk       schema.GroupVersionKind
	namespace string
	name      string
	where     string // "document 2", "document 2 item 3"
}

// docError is a document that could not be read, and where it is.
type docError struct {
	where string // "document 3", "document 2 item 1"
	err   error
}

func (e *docError) Error() string { return e.where + ": " + e.err.Error() }

func docErr(where string, err error) error { return &docError{where, err} }

// parseManifests splits a YAML or JSON stream into documents (YAML "---"
// separators; a JSON file is one document) and returns the objects in them,
// the items of a List included. Documents that are empty or not Kubernetes
// objects (no apiVersion or no kind, as a Chart.yaml or a values file) are
// skipped. A document that does not parse is an error naming it; the
// documents before and after it are still returned.
func parseManifests(data []byte) (objs []manifestObject, docs int, errs []error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, docs, errs
		}
		if err != nil {
			return objs, docs, append(errs, docErr(fmt.Sprintf("document %d", n), err))
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			n--
			continue
		}
		docs++
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			errs = append(errs, docErr(fmt.Sprintf("document %d", n), err))
			continue
		}
		where := fmt.Sprintf("document %d", n)
		o, ok, err := objectOf(m, where)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		items, isList := m["items"].([]any)
		if isList && strings.HasSuffix(o.gvk.Kind, "List") {
			for i, it := range items {
				im, _ := it.(map[string]any)
				iw := fmt.Sprintf("%s item %d", where, i+1)
				if im == nil {
					errs = append(errs, docErr(iw, errors.New("not an object")))
					continue
				}
				item, ok, err := objectOf(im, iw)
				switch {
				case err != nil:
					errs = append(errs, err)
				case ok:
					objs = append(objs, item)
				}
			}
			if o.gvk.Kind == "List" && o.gvk.Group == "" {
				continue // v1 List is a client-side wrapper, always served
			}
		}
		objs = append(objs, o)
	}
}

// objectOf reads apiVersion, kind and metadata of a decoded document. ok is
// false for a document that is not a Kubernetes object.
func objectOf(m map[string]any, where string) (manifestObject, bool, error) {
	if m == nil {
		return manifestObject{}, false, nil
	}
	av, hasAV := m["apiVersion"]
	k, hasKind := m["kind"]
	if !hasAV || !hasKind {
		return manifestObject{}, false, nil
	}
	apiVersion, ok1 := av.(string)
	kind, ok2 := k.(string)
	if !ok1 || !ok2 || apiVersion == "" || kind == "" {
		return manifestObject{}, false, docErr(where, errors.New("apiVersion and kind must be non-empty strings"))
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return manifestObject{}, false, docErr(where, err)
	}
	o := manifestObject{gvk: gv.WithKind(kind), where: where}
	if md, ok := m["metadata"].(map[string]any); ok {
		o.name, _ = md["name"].(string)
		o.namespace, _ = md["namespace"].(string)
	}
	return o, true, nil
}

// manifestExts are the file name endings read when walking a directory; a
// file named on the command line is read whatever its name.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// ManifestFiles lists the files under paths: a file as is; a directory
// recursively, its .yaml, .yml and .json files (hidden directories, such as
// .git, skipped), sorted. A path that cannot be read is an error naming it.
func ManifestFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if manifestExts[strings.ToLower(filepath.Ext(path))] {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", p, err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

// CheckManifests judges every object of the files against the table at
// target. A file or document that cannot be read is an unknown finding
// naming it; one info finding says how many files, documents and objects
// were read.
func CheckManifests(files []string, table *APITable, target Version) []Finding {
	var out []Finding
	var ndocs, nobjs int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			out = append(out, Finding{Check: FamilyAPIsBySource, Severity: Unknown, Object: f, Source: f,
				Message: fmt.Sprintf("cannot read the manifest: %v", err)})
			continue
		}
		objs, docs, errs := parseManifests(data)
		ndocs += docs
		nobjs += len(objs)
		for _, err := range errs {
			out = append(out, docFinding(f, f, err))
		}
		for _, o := range objs {
			if fd, ok := judgeObject(o, table, target, f+" "+o.where, ""); ok {
				out = append(out, fd)
			}
		}
	}
	out = append(out, Finding{Check: FamilyAPIsBySource, Severity: Info, Object: "manifests", Source: "-f",
		Message: fmt.Sprintf("read %d files, %d documents, %d objects", len(files), ndocs, nobjs)})
	return out
}

// judgeObject makes the finding of one object, if its API version has one.
// why is appended to the message (a Helm release's consequence).
func judgeObject(o manifestObject, table *APITable, target Version, source, why string) (Finding, bool) {
	j := table.Judge(o.gvk, target)
	if j.Severity == "" {
		return Finding{}, false
	}
	obj := gvkString(o.gvk)
	if o.name != "" {
		obj += " " + o.name
		if o.namespace != "" {
			obj = gvkString(o.gvk) + " " + o.namespace + "/" + o.name
		}
	}
	msg := j.Message
	if why != "" && j.Severity == Blocker {
		msg += "; " + why
	}
	return Finding{Check: FamilyAPIsBySource, Severity: j.Severity, Object: obj, Source: source,
		Message: msg, RemovedRelease: j.Removed, Replacement: j.Replacement}, true
}

// docFinding is the unknown finding of a document that could not be read.
func docFinding(object, source string, err error) Finding {
	var de *docError
	if errors.As(err, &de) {
		source += " " + de.where
		err = de.err
	}
	return Finding{Check: FamilyAPIsBySource, Severity: Unknown, Object: object, Source: source,
		Message: fmt.Sprintf("not judged: malformed YAML or JSON (or a template): %v", err)}
}
