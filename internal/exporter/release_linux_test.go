package exporter

import (
	"os"
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
