package cni

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSettingsFrom(t *testing.T) {
	three, no := 3, false
	fromRef := corev1.EnvVar{Name: EnvWarmIPTarget, ValueFrom: &corev1.EnvVarSource{}}
	for _, tc := range []struct {
		name     string
		ds       bool
		env      []corev1.EnvVar
		o        Overrides
		want     Settings
		sources  map[string]string
		problems []string
	}{
		{name: "no DaemonSet: ipamd's defaults",
			want: Settings{WarmENITarget: 1}},
		{name: "from the DaemonSet", ds: true,
			env: []corev1.EnvVar{env(EnvWarmENITarget, "0"), env(EnvWarmIPTarget, "5"), env(EnvMinimumIPTarget, "20"),
				env(EnvWarmPrefixTarget, "2"), env(EnvPrefixDelegation, "true"), env(EnvCustomNetworking, "1")},
			want:    Settings{WarmENITarget: 0, WarmIPTarget: 5, MinimumIPTarget: 20, WarmPrefixTarget: 2, PrefixDelegation: true, CustomNetworking: true},
			sources: map[string]string{EnvWarmENITarget: SourceDaemonSet, EnvPrefixDelegation: SourceDaemonSet}},
		{name: "unparsable values fall back as ipamd does", ds: true,
			env:      []corev1.EnvVar{env(EnvWarmENITarget, "-1"), env(EnvWarmIPTarget, "lots"), env(EnvPrefixDelegation, "yes")},
			want:     Settings{WarmENITarget: 1},
			problems: []string{"WARM_ENI_TARGET=\"-1\"", "WARM_IP_TARGET=\"lots\"", "ENABLE_PREFIX_DELEGATION=\"yes\""}},
		{name: "a value from a reference is unresolved", ds: true, env: []corev1.EnvVar{fromRef},
			want: Settings{WarmENITarget: 1}, sources: map[string]string{EnvWarmIPTarget: SourceUnresolved},
			problems: []string{"WARM_IP_TARGET comes from a reference"}},
		{name: "flags override the DaemonSet", ds: true,
			env:     []corev1.EnvVar{env(EnvWarmENITarget, "0"), env(EnvPrefixDelegation, "true")},
			o:       Overrides{WarmENITarget: &three, PrefixDelegation: &no},
			want:    Settings{WarmENITarget: 3},
			sources: map[string]string{EnvWarmENITarget: SourceFlag, EnvPrefixDelegation: SourceFlag, EnvWarmIPTarget: SourceDefault}},
		{name: "the last of a repeated variable wins", ds: true,
			env:  []corev1.EnvVar{env(EnvWarmPrefixTarget, "4"), env(EnvWarmPrefixTarget, "1")},
			want: Settings{WarmENITarget: 1, WarmPrefixTarget: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Settings
			var problems []string
			if tc.ds {
				got, problems = SettingsFrom(awsNodeDS(1, tc.env...), tc.o)
			} else {
				got, problems = SettingsFrom(nil, tc.o)
			}
			sources := got.Sources
			got.Sources, tc.want.Sources = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.sources {
				if sources[k] != v {
					t.Errorf("source of %s = %s, want %s", k, sources[k], v)
				}
			}
			if len(problems) != len(tc.problems) {
				t.Errorf("problems %q, want %d", problems, len(tc.problems))
			}
			for _, p := range tc.problems {
				if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, p) }) {
					t.Errorf("problems %q, want one with %q", problems, p)
				}
			}
		})
	}
}
