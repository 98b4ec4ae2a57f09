package gate

// Gate hold's own objects. `upgradeguard gate hold`'s pods are ready only
// while the gate says GO (deploy/hold: that is how kops' validation is
// held), so whatever describes them says what the gate said, not what users
// reach: their Deployment's available replicas, a Service or a
// PodDisruptionBudget of them, alerts on their pods. Judged like any
// workload they would hold the gate that holds them: after the real cause
// clears, WAIT for the availability window (for ever against a baseline
// taken while they were ready), and again whenever one of them restarts.
//
// The exporter marks the hold's Deployments, Services and PDBs by the
// labels deploy/hold puts on them (kube.IsGateHold:
// app.kubernetes.io/name=upgradeguard, app.kubernetes.io/component=hold)
// with the series below; the gate sets those objects aside, with a note in
// the row, and the alerts that name them or their pods (kube-prometheus'
// KubeDeploymentReplicasMismatch{namespace,deployment},
// KubePodNotReady{namespace,pod}, KubeContainerWaiting...). The marks come
// with the availability check's query of the state now, which the alerts
// and drain checks share when they need it.

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// The exporter's marks of gate hold's own objects (collectors/workloads,
// collectors/pdb): 1, and no series for any other object.
const (
	mDeploymentGateHold = "upgradeguard_deployment_gate_hold"
	mServiceGateHold    = "upgradeguard_service_gate_hold"
	mPDBGateHold        = "upgradeguard_pdb_gate_hold"
)

// gateHoldWhy says why gate hold's objects are set aside.
const gateHoldWhy = "the gate hold's own, ready only while the gate says GO"

// gateHold is the set of gate hold's own Deployments, Services and PDBs.
type gateHold map[objKey]bool

// gateHoldOf reads the marks among samples.
func gateHoldOf(samples []sample) gateHold {
	h := gateHold{}
	for _, smp := range samples {
		switch smp.labels["__name__"] {
		case mDeploymentGateHold, mServiceGateHold, mPDBGateHold:
		default:
			continue
		}
		if k, ok := keyOf(smp.labels); ok && smp.value == 1 {
			h[k] = true
		}
	}
	return h
}

// note lists the objects of kind set aside, "" for none.
func (h gateHold) note(kind string) string {
	var names []string
	for k := range h {
		if k.kind == kind {
			names = append(names, kind+" "+k.String())
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "set aside, " + gateHoldWhy + ": " + list(names)
}

// gateHoldAlertLabels are the labels by which an alert names an object;
// an alert without a namespace and one of them cannot be about gate hold.
var gateHoldAlertLabels = []string{"deployment", "replicaset", "pod", "service", "pdb", "poddisruptionbudget", "workload"}

// mayNameGateHold reports whether alert labels l could name gate hold's
// objects, so whether its marks are worth asking for.
func mayNameGateHold(l map[string]string) bool {
	if l["namespace"] == "" {
		return false
	}
	for _, n := range gateHoldAlertLabels {
		if l[n] != "" {
			return true
		}
	}
	return false
}

// alertNames says which of gate hold's objects alert labels l name ("pod
// upgradeguard/upgradeguard-hold-7c9f6d8b5d-x2x4z"), "" for none: its
// Deployment (deployment, or workload with workload_type deployment as in
// kubernetes-mixin's recording rules), one of its ReplicaSets or pods (by
// the names the Deployment and ReplicaSet controllers give them), its
// Service or its PDB, each in the alert's namespace.
func (h gateHold) alertNames(l map[string]string) string {
	ns := l["namespace"]
	if ns == "" || len(h) == 0 {
		return ""
	}
	if d := l["deployment"]; d != "" && h[objKey{"deployment", ns, d}] {
		return "deployment " + ns + "/" + d
	}
	if d := l["workload"]; d != "" && strings.EqualFold(l["workload_type"], "deployment") && h[objKey{"deployment", ns, d}] {
		return "deployment " + ns + "/" + d
	}
	for _, kind := range []string{"service", "pdb"} {
		if v := l[kind]; v != "" && h[objKey{kind, ns, v}] {
			return kind + " " + ns + "/" + v
		}
	}
	if v := l["poddisruptionbudget"]; v != "" && h[objKey{"pdb", ns, v}] {
		return "pdb " + ns + "/" + v
	}
	rs, pod := l["replicaset"], l["pod"]
	if rs == "" && pod == "" {
		return ""
	}
	deployments := make([]string, 0, 1)
	for k := range h {
		if k.kind == "deployment" && k.namespace == ns {
			deployments = append(deployments, k.name)
		}
	}
	sort.Strings(deployments)
	for _, d := range deployments {
		if rs != "" && replicaSetOf(rs, d) {
			return "replicaset " + ns + "/" + rs
		}
		if pod != "" && podOf(pod, d) {
			return "pod " + ns + "/" + pod
		}
	}
	return ""
}

// safeAlphabet is the alphabet of the names Kubernetes generates
// (k8s.io/apimachinery/pkg/util/rand: no vowels, no 0, 1 or 3): a
// ReplicaSet's pod-template-hash (rand.SafeEncodeString of a 32-bit hash,
// 1 to 10 characters) and a pod's random suffix (5 characters).
const safeAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func generated(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune(safeAlphabet, c) {
			return false
		}
	}
	return true
}

// replicaSetOf reports whether rs is the name of a ReplicaSet of
// Deployment d: d, a dash and a pod-template-hash.
func replicaSetOf(rs, d string) bool {
	hash, ok := strings.CutPrefix(rs, d+"-")
	return ok && generated(hash, 1, 10)
}

// podOf reports whether pod is the name of a pod of Deployment d: its
// ReplicaSet's name, a dash and 5 random characters; the API server cuts a
// generateName longer than 58 characters to 58 (names.SimpleNameGenerator),
// so a pod of a long ReplicaSet name has 63 characters, the last 5 random.
func podOf(pod, d string) bool {
	if rest, ok := strings.CutPrefix(pod, d+"-"); ok {
		if hash, suffix, ok := strings.Cut(rest, "-"); ok && generated(hash, 1, 10) && generated(suffix, 5, 5) {
			return true
		}
	}
	if len(pod) != 63 || !generated(pod[58:], 5, 5) {
		return false
	}
	base, prefix := pod[:58], d+"-"
	if strings.HasPrefix(prefix, base) {
		return true // the Deployment's own name was cut
	}
	hash, ok := strings.CutPrefix(base, prefix)
	return ok && (generated(hash, 0, 10) || (strings.HasSuffix(hash, "-") && generated(hash[:len(hash)-1], 1, 10)))
}

// gateHold returns gate hold's own objects from the availability check's
// query of the state now (sent once per evaluation, whichever check asks
// first), and that query.
func (g *Gate) gateHold(ctx context.Context, s *evalState) (gateHold, string, error) {
	q := g.availabilityNowQuery()
	res, err := s.query(ctx, q)
	if err != nil {
		return nil, q, fmt.Errorf("which objects are the gate hold's own is unknown: %w", err)
	}
	return gateHoldOf(res.samples), q, nil
}
