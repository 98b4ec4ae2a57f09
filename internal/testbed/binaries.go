package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Versions of the programs the testbed runs, as internal/testbed/deps.sh
// builds them.
const (
	EtcdVersion       = "v3.6.16"
	KubernetesVersion = "v1.37.2"
	KwokVersion       = "v0.8.0"
	KarpenterVersion  = "v1.15.0" // sigs.k8s.io/karpenter, its kwok provider
)

// Binaries are the paths of the programs the testbed runs.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler string
	Kwok, KwokStages                              string // kwok and its stage configs (one YAML stream)
	Prometheus, Thanos                            string // only needed with Options.Prometheus
	Karpenter, KarpenterCRDs                      string // Karpenter's kwok provider and its CRDs' directory; only with Options.Karpenter
}

// CacheDir is where internal/testbed/deps.sh puts the binaries:
// $UPGRADEGUARD_TESTBED_CACHE, else ~/.cache/upgradeguard-testbed.
func CacheDir() string {
	if d := os.Getenv("UPGRADEGUARD_TESTBED_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "upgradeguard-testbed")
	}
	return filepath.Join(home, ".cache", "upgradeguard-testbed")
}

// FindBinaries locates the programs in CacheDir (Prometheus on PATH or in
// /usr/bin, Thanos as the newest thanos-v* in the cache). The error lists
// every missing one.
func FindBinaries(withPrometheus bool) (Binaries, error) {
	c := CacheDir()
	k := filepath.Join(c, "kubernetes-"+KubernetesVersion)
	b := Binaries{
		Etcd:              filepath.Join(c, "etcd-"+EtcdVersion, "etcd"),
		APIServer:         filepath.Join(k, "kube-apiserver"),
		ControllerManager: filepath.Join(k, "kube-controller-manager"),
		Scheduler:         filepath.Join(k, "kube-scheduler"),
		Kwok:              filepath.Join(c, "kwok-"+KwokVersion, "kwok"),
		KwokStages:        filepath.Join(c, "kwok-"+KwokVersion, "stages.yaml"),
	}
	need := []string{b.Etcd, b.APIServer, b.ControllerManager, b.Scheduler, b.Kwok, b.KwokStages}
	var missing []string
	if withPrometheus {
		b.Prometheus = "/usr/bin/prometheus"
		if p, err := exec.LookPath("prometheus"); err == nil {
			b.Prometheus = p
		}
		b.Thanos = newestThanos(c)
		if b.Thanos == "" {
			missing = append(missing, filepath.Join(c, "thanos-v*", "thanos"))
		} else {
			need = append(need, b.Thanos)
		}
		need = append(need, b.Prometheus)
	}
	for _, p := range need {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("testbed binaries missing (run make testbed-deps): %s", strings.Join(missing, ", "))
	}
	return b, nil
}

// newestThanos returns the thanos binary of the highest version in cache, or "".
func newestThanos(cache string) string {
	dirs, _ := filepath.Glob(filepath.Join(cache, "thanos-v*"))
	type cand struct {
		path string
		ver  []int
	}
	var cs []cand
	for _, d := range dirs {
		v, err := parseVersion(strings.TrimPrefix(filepath.Base(d), "thanos-v"))
		if err != nil {
			continue // e.g. an unfinished thanos-vX.Y.Z.tmp
		}
		bin := filepath.Join(d, "thanos")
		if st, err := os.Stat(bin); err == nil && st.Size() > 0 {
			cs = append(cs, cand{bin, v})
		}
	}
	if len(cs) == 0 {
		return ""
	}
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i].ver, cs[j].ver
		for k := range min(len(a), len(b)) {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return len(a) < len(b)
	})
	return cs[len(cs)-1].path
}

func parseVersion(s string) ([]int, error) {
	var v []int
	for _, f := range strings.Split(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, errors.New("not a version: " + s)
		}
		v = append(v, n)
	}
	return v, nil
}
