package exporter

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// DefaultGCPercent is the exporter's garbage collection target when the
// GOGC environment variable is not set: the heap may grow 50% over the live
// data between collections instead of Go's 100%.
//
// The live heap is small (the stripped stores and the rendered series), but
// each watch event decodes a whole object first - a pod is a few kilobytes
// of garbage - so with GOGC=100 about half of the heap in use is garbage
// waiting for the next collection. Measured on the testbed (make
// bench-scale's scenarios, one exporter, 20 scrapes, load ~20 on 2 cores):
// at 2,000 nodes and 40,000 pods the anonymous resident memory went from
// 74.0 MiB to 60.3 MiB with 50 and 57.4 MiB with 30, the process's CPU time
// over the run from 2.8 s to 3.2 s and 4.3 s; at 500 nodes and 10,000 pods
// from 32.6 MiB to 27.4 MiB. The Go GC guide (go.dev/doc/gc-guide) describes
// the trade: collections twice as frequent, each as cheap as before, so GC
// CPU roughly doubles - a small share of the exporter's, which is mostly
// decoding. GOGC in the environment (and GOMEMLIMIT, which the deploy
// bundle sets from the memory limit) still applies.
const DefaultGCPercent = 50

// setGCPercent sets the collection target to DefaultGCPercent unless the
// environment sets GOGC, and logs the target in effect.
func setGCPercent(logger *slog.Logger) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		logger.Debug("garbage collection target from the environment", "GOGC", v)
		return
	}
	debug.SetGCPercent(DefaultGCPercent)
	logger.Debug("garbage collection target", "GOGC", DefaultGCPercent)
}

// returnFreeHeap collects garbage and returns the free heap to the operating
// system, once, after the informers' initial lists, and returns the bytes of
// free heap that were still resident before. The initial lists decode every
// object at once: the heap peaks well above what the stores then keep, and
// the runtime's background scavenger returns only what exceeds its target
// (about 10% over the next collection's goal), so the rest of the peak stays
// resident for good. At 2,000 nodes and 40,000 pods that was 6.0 MiB of free
// heap still resident after the scrapes (go_memstats_heap_idle_bytes minus
// go_memstats_heap_released_bytes; make bench-scale prints it). The cost is
// one collection and the page faults of heap grown again later.
func returnFreeHeap() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	debug.FreeOSMemory()
	return m.HeapIdle - m.HeapReleased
}
