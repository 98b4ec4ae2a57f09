package kube

import "testing"

func TestInstanceID(t *testing.T) {
	for in, want := range map[string]string{
		"aws:///eu-west-1a/i-0123456789abcdef0": "i-0123456789abcdef0",
		"aws://eu-west-1a/i-01":                 "i-01",
		"aws:///eu-west-1a/":                    "",
		"kwok://node-1":                         "",
		"":                                      "",
	} {
		if got := InstanceID(in); got != want {
			t.Errorf("InstanceID(%q) = %q, want %q", in, got, want)
		}
	}
}
