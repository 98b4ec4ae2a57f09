package alerts

import (
	"regexp"
	"strconv"
	"testing"
)

func TestReleasesUpTo(t *testing.T) {
	for _, release := range []string{"1.5", "1.9", "1.10", "1.19", "1.20", "1.38", "1.40"} {
		pattern := releasesUpTo(release)
		// The PromQL string unquoted is the regex.
		unq, err := strconv.Unquote(`"` + pattern + `"`)
		if err != nil {
			t.Fatalf("%s: %v", pattern, err)
		}
		re := regexp.MustCompile("^(?:" + unq + ")$")
		n, _ := strconv.Atoi(release[2:])
		for i := 0; i <= 60; i++ {
			v := "1." + strconv.Itoa(i)
			if got, want := re.MatchString(v), i <= n; got != want {
				t.Errorf("releasesUpTo(%s) = %s matches %s: %v", release, pattern, v, got)
			}
		}
		for _, other := range []string{"", "2.1", "1.3x", "11.3"} {
			if re.MatchString(other) {
				t.Errorf("releasesUpTo(%s) matches %q", release, other)
			}
		}
	}
}
