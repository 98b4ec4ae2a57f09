package strictyaml

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doc struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

func TestDecode(t *testing.T) {
	var d doc
	if err := Decode([]byte("name: a\ncount: 2\n"), &d); err != nil || d != (doc{"a", 2}) {
		t.Fatalf("%+v, %v", d, err)
	}
	if err := Decode(nil, &d); err != nil || d != (doc{"a", 2}) {
		t.Errorf("empty input: %+v, %v", d, err)
	}
	if err := Decode([]byte("name: a\nbogus: 1\n"), &d); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("unknown field: %v", err)
	}
	if err := Decode([]byte("name: a\n---\nname: b\n"), &d); !errors.Is(err, ErrMoreThanOneDocument) {
		t.Errorf("two documents: %v", err)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("count: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	parse := func(b []byte) (doc, error) {
		var d doc
		return d, Decode(b, &d)
	}
	if _, err := Load(path, parse); err == nil || !strings.HasPrefix(err.Error(), "policy file "+path+": ") {
		t.Errorf("bad file: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), parse); err == nil || !strings.HasPrefix(err.Error(), "policy file: ") {
		t.Errorf("missing file: %v", err)
	}
}
