package testbed

import (
	"fmt"
	"io"
	"path/filepath"
)

// StartError is the error of a failed Start. The Dir of the failed testbed
// is kept so its logs can be read.
type StartError struct {
	Err    error
	LogDir string // <Dir>/logs of the failed testbed

	ownDir bool // Dir was a temporary directory made by Start
}

func (e *StartError) Error() string {
	return fmt.Sprintf("starting the testbed: %v (logs in %s)", e.Err, e.LogDir)
}

func (e *StartError) Unwrap() error { return e.Err }

// DumpLogs writes the last 200 lines of each log in LogDir to w.
func (e *StartError) DumpLogs(w io.Writer) {
	paths, _ := filepath.Glob(filepath.Join(e.LogDir, "*.log"))
	for _, path := range paths {
		fmt.Fprintf(w, "===== last lines of %s =====\n", path)
		for _, l := range tailFile(path, 200) {
			fmt.Fprintln(w, l)
		}
	}
}
