package exporter

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupPages tells the kernel that the pages of the executable's
// read-only mappings (its code and read-only data) mapped so far are not
// needed, and returns the bytes released. upgradeguard is one binary for
// every subcommand (gate, roll, preflight, generate and the exporter), and
// the Go runtime runs the initialisation of every package linked in at
// start, which maps tens of MiB of code and data the exporter never runs
// again (52 MiB of a 134 MB binary, each fault mapping up to 64 KiB around
// it). MADV_DONTNEED on a private file mapping that was never written drops
// the pages from the process' page tables only: a page used again is mapped
// back from the page cache (or read from the file), so nothing changes but
// the resident set, which then holds what the exporter runs.
//
// It releases nothing unless the executable is a fixed-address ELF
// executable (ET_EXEC, Go's default static build): a position-independent
// one (-buildmode=pie, as some distributions build) has its read-only
// relocation data written by the loader, and dropping those private copies
// would read the unrelocated bytes back from the file and crash. For the
// same reason a mapping that holds any anonymous (private, written) page,
// per /proc/self/smaps, and every writable mapping are left alone.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	if ok, err := fixedAddress(exe); err != nil || !ok {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()

	type mapping struct {
		start, end uint64
		perms      string
		anonymous  int64 // kB, -1 until read
	}
	var candidates []mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// 00400000-036e8000 r-xp 00000000 fd:01 1234 /path/to/upgradeguard
			cur = nil
			if len(fields) != 6 || fields[5] != exe || strings.Contains(fields[1], "w") || !strings.HasSuffix(fields[1], "p") {
				continue
			}
			lo, hi, _ := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || end <= start {
				return 0, fmt.Errorf("/proc/self/smaps: bad range %q", fields[0])
			}
			candidates = append(candidates, mapping{start: start, end: end, perms: fields[1], anonymous: -1})
			cur = &candidates[len(candidates)-1]
			continue
		}
		if cur != nil && len(fields) >= 2 && fields[0] == "Anonymous:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/self/smaps: %q: %w", line, err)
			}
			cur.anonymous = kb
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	var released int64
	for _, m := range candidates {
		if m.anonymous != 0 { // written pages, or unknown
			continue
		}
		// The raw system call: unix.Madvise takes a []byte, which an
		// address range of the executable is not.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %x-%x %s: %w", m.start, m.end, m.perms, errno)
		}
		released += int64(m.end - m.start)
	}
	return released, nil
}

// fixedAddress tells whether the ELF file at path is an ET_EXEC executable,
// loaded at fixed addresses with no relocations applied at run time.
func fixedAddress(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return f.Type == elf.ET_EXEC, nil
}
