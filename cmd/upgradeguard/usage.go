package main

import "fmt"

// usageError is a bad flag, combination of flags, policy or input file of
// any command (gate check and wait, gate hold, roll, preflight): exit 2
// (exitUsage, which is preflight.ExitUsage too), logged at ERROR on exit.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) ExitCode() int { return exitUsage }

// usageErr is a usageError that is also printed at once to stderr as
// "upgradeguard: error: <message>", as kingpin prints its own usage errors
// (gate check and wait, preflight).
func usageErr(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(gateStderr, "upgradeguard: error: %s\n", msg)
	return &usageError{msg}
}
