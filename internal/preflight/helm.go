package preflight

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"

	rspb "helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Helm 3 keeps each revision of a release in a Secret (the default storage
// driver) or a ConfigMap (HELM_DRIVER=configmap) labelled owner=helm,
// name=<release>, status=<status>, version=<revision>, whose data "release"
// is the release encoded as helm.sh/helm/v3/pkg/storage/driver/util.go's
// encodeRelease does: JSON, gzipped, base64. The release type is Helm's own
// (helm.sh/helm/v3/pkg/release); the decoding is written here because
// importing Helm's storage driver package would link its SQL driver's
// dependencies (squirrel, sqlx, lib/pq, sql-migrate) for three lines.
const (
	helmSecretType  = "helm.sh/release.v1"
	helmSelector    = "owner=helm,status=deployed"
	helmListPage    = 50
	helmUpgradeFail = "a release holding a removed API fails every later helm upgrade and rollback (Helm cannot map the deployed revision's objects); rewrite the stored manifest (the helm-mapkubeapis plugin) or uninstall and reinstall"
)

var gzipMagic = []byte{0x1f, 0x8b, 0x08}

// DecodeHelmRelease decodes the "release" data of a Helm 3 storage Secret
// or ConfigMap: base64, then gzip when the gzip header is there (releases
// stored before Helm compressed them are not), then JSON.
func DecodeHelmRelease(data []byte) (*rspb.Release, error) {
	b, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	if bytes.HasPrefix(b, gzipMagic) {
		r, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		b, err = io.ReadAll(io.LimitReader(r, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	var rls rspb.Release
	if err := json.Unmarshal(b, &rls); err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	return &rls, nil
}

// EncodeHelmRelease encodes a release as Helm's storage drivers do (for
// tests and fixtures).
func EncodeHelmRelease(rls *rspb.Release) ([]byte, error) {
	b, err := json.Marshal(rls)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// helmRecord is one stored revision.
type helmRecord struct {
	namespace, name, store string // store: "secret/sh.helm.release.v1.web.v3"
	revision               int
	data                   []byte
}

// CheckHelmReleases reads the Helm 3 release records (Secrets, and
// ConfigMaps of the configmap driver) in every namespace, keeps the latest
// deployed revision of each release, and judges the objects of its
// manifest. A removed API in a release is a blocker whose message says
// why; a record that cannot be listed or decoded is unknown.
func CheckHelmReleases(ctx context.Context, cs kubernetes.Interface, table *APITable, target Version) []Finding {
	var out []Finding
	var records []helmRecord
	cont := ""
	for {
		l, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: helmSelector, Limit: helmListPage, Continue: cont})
		if err != nil {
			return append(out, Finding{Check: FamilyAPIsBySource, Severity: Unknown, Object: "Helm releases", Source: "cluster",
				Message: fmt.Sprintf("listing Helm release Secrets (%s): %v", helmSelector, err)})
		}
		for _, s := range l.Items {
			if s.Type != helmSecretType {
				continue
			}
			rev, _ := strconv.Atoi(s.Labels["version"])
			records = append(records, helmRecord{s.Namespace, s.Labels["name"], "secret/" + s.Name, rev, s.Data["release"]})
		}
		if cont = l.Continue; cont == "" {
			break
		}
	}
	for {
		l, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: helmSelector, Limit: helmListPage, Continue: cont})
		if err != nil {
			return append(out, Finding{Check: FamilyAPIsBySource, Severity: Unknown, Object: "Helm releases", Source: "cluster",
				Message: fmt.Sprintf("listing Helm release ConfigMaps (%s): %v", helmSelector, err)})
		}
		for _, c := range l.Items {
			rev, _ := strconv.Atoi(c.Labels["version"])
			records = append(records, helmRecord{c.Namespace, c.Labels["name"], "configmap/" + c.Name, rev, []byte(c.Data["release"])})
		}
		if cont = l.Continue; cont == "" {
			break
		}
	}
	// The latest deployed revision of each release (a failed upgrade can
	// leave an older one labelled deployed too).
	latest := map[string]helmRecord{}
	for _, r := range records {
		k := r.namespace + "/" + r.name
		if cur, ok := latest[k]; !ok || r.revision > cur.revision {
			latest[k] = r
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	nobjs := 0
	for _, k := range keys {
		r := latest[k]
		source := fmt.Sprintf("helm release %s revision %d (%s/%s)", k, r.revision, r.namespace, r.store)
		rls, err := DecodeHelmRelease(r.data)
		if err != nil {
			out = append(out, Finding{Check: FamilyAPIsBySource, Severity: Unknown, Object: "helm release " + k, Source: source,
				Message: fmt.Sprintf("cannot decode the release record: %v", err)})
			continue
		}
		objs, _, errs := parseManifests([]byte(rls.Manifest))
		nobjs += len(objs)
		for _, err := range errs {
			out = append(out, docFinding("helm release "+k, source+" manifest", err))
		}
		for _, o := range objs {
			if o.namespace == "" && isNamespaced(o.gvk.Kind) {
				o.namespace = r.namespace
			}
			if fd, ok := judgeObject(o, table, target, source, fmt.Sprintf("Helm release %s holds it: %s", k, helmUpgradeFail)); ok {
				out = append(out, fd)
			}
		}
	}
	out = append(out, Finding{Check: FamilyAPIsBySource, Severity: Info, Object: "Helm releases", Source: "cluster",
		Message: fmt.Sprintf("read %d deployed releases (%d objects) from %d release records", len(keys), nobjs, len(records))})
	return out
}

// isNamespaced is a rough guess for the object name shown in a finding
// (Helm leaves the namespace out of rendered namespaced objects); it never
// changes a judgement.
func isNamespaced(kind string) bool {
	switch kind {
	case "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
		"StorageClass", "PriorityClass", "PodSecurityPolicy", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
		"APIService", "RuntimeClass", "IngressClass", "CSIDriver", "CSINode", "VolumeAttachment", "FlowSchema",
		"PriorityLevelConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
		"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "ClusterTrustBundle":
		return false
	}
	return true
}
