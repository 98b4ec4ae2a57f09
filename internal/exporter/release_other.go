//go:build !linux

package exporter

// releaseStartupPages does nothing outside Linux (release_linux.go).
func releaseStartupPages() (int64, error) { return 0, nil }
