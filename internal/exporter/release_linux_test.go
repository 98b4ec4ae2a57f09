package exporter

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rssFile returns the process' resident file-backed memory in bytes, from
// /proc/self/status.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseStartupPages: the test binary, like upgradeguard, has mapped
// much of itself by now; releasing drops its resident file pages, and the
// process goes on running (its code faults back in).
func TestReleaseStartupPages(t *testing.T) {
	before := rssFile(t)
	n, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("released %d MiB of mappings; resident file pages %.1f -> %.1f MiB", n>>20, float64(before)/(1<<20), float64(after)/(1<<20))
	if n == 0 || after >= before {
		t.Errorf("released %d bytes, resident file pages %d -> %d", n, before, after)
	}
	// Still running: code and read-only data come back.
	if s := strings.Repeat("x", 3); s != "xxx" {
		t.Fatal(s)
	}
}

// TestReleaseStartupPagesPIE builds a position-independent program that
// releases its pages and goes on using its type data: it must not crash
// (dropping the loader's relocated read-only pages made it fault).
func TestReleaseStartupPagesPIE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	src, err := os.ReadFile("release_linux.go")
	if err != nil {
		t.Fatal(err)
	}
	prog := strings.Replace(string(src), "package exporter", "package main", 1) + `
func main() {
	n, err := releaseStartupPages()
	if err != nil {
		panic(err)
	}
	var sink []any
	for i := range 1000 {
		sink = append(sink, fmt.Sprintf("%v %T", i, sink), map[string]any{"x": i})
	}
	fmt.Println("released", n, len(sink))
}
`
	// Built inside this module, for its golang.org/x/sys.
	pkgDir := filepath.Join("testdata", "releaseprog")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pkgDir) })
	if err := os.WriteFile(filepath.Join(pkgDir, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"pie", "exe"} {
		out := filepath.Join(t.TempDir(), "prog")
		build := exec.Command("go", "build", "-buildmode="+mode, "-o", out, "./"+pkgDir)
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build -buildmode=%s: %v\n%s", mode, err, b)
		}
		b, err := exec.Command(out).CombinedOutput()
		if err != nil {
			t.Fatalf("-buildmode=%s: %v\n%s", mode, err, b)
		}
		t.Logf("-buildmode=%s: %s", mode, strings.TrimSpace(string(b)))
		if mode == "pie" && !strings.HasPrefix(string(b), "released 0 ") {
			t.Errorf("a PIE released pages: %s", b)
		}
	}
}
