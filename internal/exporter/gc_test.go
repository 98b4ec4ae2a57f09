package exporter

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

// gcPercent returns the current GOGC target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// Without GOGC in the environment the exporter collects at
// DefaultGCPercent; with it, the environment's value stays.
func TestSetGCPercent(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	defer debug.SetGCPercent(gcPercent())

	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC") // t.Setenv restores it afterwards
	debug.SetGCPercent(100)
	setGCPercent(logger)
	if got := gcPercent(); got != DefaultGCPercent {
		t.Errorf("GOGC unset: target %d, want %d", got, DefaultGCPercent)
	}

	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200) // as the runtime does from the environment at start
	setGCPercent(logger)
	if got := gcPercent(); got != 200 {
		t.Errorf("GOGC=200: target %d, want 200", got)
	}
}

// TestReturnFreeHeap: the free heap left by a peak (64 MiB of garbage here,
// as the initial lists leave) is resident until returnFreeHeap gives it back.
func TestReturnFreeHeap(t *testing.T) {
	peak := make([]byte, 64<<20)
	for i := range peak {
		peak[i] = 1 // resident
	}
	peak = nil
	runtime.GC()
	freeResident := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapIdle - m.HeapReleased
	}
	if before := freeResident(); before < 32<<20 {
		t.Skipf("the runtime returned the peak by itself (%d bytes of free heap resident)", before)
	}
	returned := returnFreeHeap()
	if returned < 32<<20 {
		t.Errorf("returnFreeHeap saw %d bytes of free heap resident, want at least the 32 MiB left of the peak", returned)
	}
	if after := freeResident(); after > 4<<20 {
		t.Errorf("%d bytes of free heap still resident after returnFreeHeap, want at most 4 MiB", after)
	}
	runtime.KeepAlive(peak)
}
