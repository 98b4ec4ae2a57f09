package exporter

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupPages tells the kernel that the pages of the executable's
// read-only mappings (its code and read-only data) mapped so far are not
// needed: it returns the bytes released. upgradeguard is one binary for
// every subcommand (gate, roll, preflight, generate and the exporter), and
// the Go runtime runs the initialisation of every package linked in at
// start, which maps tens of MiB of code and data the exporter never runs
// again (52 MiB of a 134 MB binary, each fault mapping 64 KiB around it).
// MADV_DONTNEED on a private file mapping never written drops the pages
// from the process' page tables only: a page used again is mapped back from
// the page cache (or read from the file), so nothing changes but the
// resident set, which then holds what the exporter runs. Writable mappings
// (.data, .bss) are never touched: DONTNEED would lose their contents.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var released int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-036e8000 r-xp 00000000 fd:01 1234 /path/to/upgradeguard
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") || !strings.HasSuffix(fields[1], "p") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return released, fmt.Errorf("/proc/self/maps: bad range %q", fields[0])
		}
		// The raw system call: unix.Madvise takes a []byte, which an
		// address range of the executable is not.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %s %s: %w", fields[0], fields[1], errno)
		}
		released += int64(end - start)
	}
	return released, sc.Err()
}
