package exporter

import (
	"log/slog"
	"os"
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
