package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds ForTest's Start.
const startTimeout = 5 * time.Minute

// ForTest starts a testbed for an end-to-end test, or skips the test:
// under -short, and when the binaries are missing (unless the environment
// variable CI is set: then the test fails, so CI cannot pass by skipping).
// The testbed is stopped when the test ends, with the process logs in the
// test output if it failed, and when the test binary gets SIGINT or SIGTERM.
// Progress lines go to t.Logf unless o.Logf is set.
func ForTest(t testing.TB, o Options) *Testbed {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test against the testbed; skipped under -short")
	}
	if _, err := findBinaries(o); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI is set, so this is not skipped)", err)
		}
		t.Skipf("%v; run make testbed-deps", err)
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	stopOnSignal()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tb, err := Start(ctx, o)
	if err != nil {
		var se *StartError
		if errors.As(err, &se) {
			var sb strings.Builder
			se.DumpLogs(&sb)
			t.Log(sb.String())
			if se.ownDir && os.Getenv("UPGRADEGUARD_TESTBED_KEEP") != "1" {
				_ = os.RemoveAll(filepath.Dir(se.LogDir))
			}
		}
		t.Fatal(err)
	}
	// Logf can be t.Logf: never call it after the test has ended.
	var logMu sync.Mutex
	done := false
	tb.o.Logf = func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if !done {
			o.Logf(format, args...)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			var sb strings.Builder
			tb.DumpLogs(&sb)
			t.Log(sb.String())
		}
		if err := tb.Stop(); err != nil {
			t.Errorf("stopping the testbed: %v", err)
		}
		logMu.Lock()
		done = true
		logMu.Unlock()
	})
	return tb
}

var signalOnce sync.Once

// stopOnSignal makes SIGINT and SIGTERM stop every live testbed, then exit
// the test binary (status 128+signal), so an interrupted go test leaves no
// process behind. (A test binary killed outright, e.g. by SIGKILL or a test
// timeout, takes its direct children with it through Pdeathsig.)
func stopOnSignal() {
	signalOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "testbed: got %v, stopping the testbeds\n", sig)
			stopAll()
			code := 1
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s)
			}
			os.Exit(code)
		}()
	})
}

// BuildUpgradeguard compiles the upgradeguard binary from the working tree
// into the test's temporary directory, for tests that run it as a process.
func BuildUpgradeguard(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "upgradeguard")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/upgradeguard/upgradeguard/cmd/upgradeguard")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building upgradeguard: %v", err)
	}
	return bin
}

// Promtool returns the path of Debian's promtool (make testbed-deps
// installs it). Without it the test is skipped, except when the environment
// variable CI is set: then it fails.
func Promtool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool is not installed (make testbed-deps installs it): %v", err)
		}
		t.Skipf("promtool is not installed: %v", err)
	}
	return p
}
