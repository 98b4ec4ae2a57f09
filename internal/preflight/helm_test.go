package preflight

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	rspb "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// helmSecret makes the storage Secret of one release revision as Helm's
// secrets driver writes it (newSecretsObject in
// helm.sh/helm/v3/pkg/storage/driver/secrets.go).
func helmSecret(t *testing.T, ns, name string, rev int, status rspb.Status, manifest string) *corev1.Secret {
	t.Helper()
	rls := &rspb.Release{Name: name, Namespace: ns, Version: rev, Manifest: manifest, Info: &rspb.Info{Status: status}}
	data, err := EncodeHelmRelease(rls)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, rev), Namespace: ns,
			Labels: map[string]string{"owner": "helm", "name": name, "status": status.String(), "version": fmt.Sprint(rev)},
		},
		Type: helmSecretType,
		Data: map[string][]byte{"release": data},
	}
}

func TestDecodeHelmRelease(t *testing.T) {
	rls := &rspb.Release{Name: "web", Version: 3, Manifest: removedPDB}
	enc, err := EncodeHelmRelease(rls)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHelmRelease(enc)
	if err != nil || got.Name != "web" || got.Version != 3 || got.Manifest != removedPDB {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// Releases stored before Helm gzipped them: base64 of the JSON.
	raw, _ := json.Marshal(rls)
	got, err = DecodeHelmRelease([]byte(base64.StdEncoding.EncodeToString(raw)))
	if err != nil || got.Manifest != removedPDB {
		t.Fatalf("uncompressed: %+v, %v", got, err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte{0x1f, 0x8b, 0x08, 0, 1}), base64.StdEncoding.EncodeToString([]byte("{not json"))} {
		if _, err := DecodeHelmRelease([]byte(bad)); err == nil {
			t.Errorf("DecodeHelmRelease(%q) accepted", bad)
		}
	}
}

func TestCheckHelmReleases(t *testing.T) {
	endpoints := "apiVersion: v1\nkind: Endpoints\nmetadata: {name: legacy}\n"
	corrupt := helmSecret(t, "shop", "broken", 1, rspb.StatusDeployed, currentDeployment)
	corrupt.Data["release"] = []byte("%%%")
	objs := []runtime.Object{
		// web: revision 1 (superseded) held a removed Ingress; the
		// deployed revision 2 holds a removed PDB and deprecated Endpoints.
		helmSecret(t, "shop", "web", 1, rspb.StatusSuperseded, "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: front}\n"),
		helmSecret(t, "shop", "web", 2, rspb.StatusDeployed, removedPDB+"---\n"+currentDeployment+"---\n"+endpoints),
		// api: a failed upgrade left revisions 4 and 5 both labelled
		// deployed; only 5 counts, and it is clean.
		helmSecret(t, "shop", "api", 4, rspb.StatusDeployed, removedPDB),
		helmSecret(t, "shop", "api", 5, rspb.StatusDeployed, currentDeployment),
		// A pending upgrade is not the deployed revision.
		helmSecret(t, "ops", "tools", 7, rspb.StatusPendingUpgrade, removedPDB),
		helmSecret(t, "ops", "tools", 6, rspb.StatusDeployed, currentDeployment),
		corrupt,
		// A Secret that only looks like Helm's.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "shop", Labels: map[string]string{"owner": "helm", "status": "deployed"}},
			Data: map[string][]byte{"release": []byte("x")}},
	}
	// A release of the configmap driver.
	cmSecret := helmSecret(t, "legacy", "cron", 2, rspb.StatusDeployed, "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: nightly}\n")
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: cmSecret.ObjectMeta, Data: map[string]string{"release": string(cmSecret.Data["release"])}})

	cs := fake.NewClientset(objs...)
	fs := CheckHelmReleases(context.Background(), cs, NewAPITable(), Version{1, 37})
	by := findingsBy(fs)

	pdb, ok := by["blocker policy/v1beta1 PodDisruptionBudget shop/web"]
	if !ok {
		t.Fatalf("no blocker for the web release's PDB: %+v", fs)
	}
	if pdb.Source != "helm release shop/web revision 2 (shop/secret/sh.helm.release.v1.web.v2)" {
		t.Errorf("source %q", pdb.Source)
	}
	if !strings.Contains(pdb.Message, "Helm release shop/web holds it") || !strings.Contains(pdb.Message, "helm upgrade") {
		t.Errorf("the blocker does not say why: %q", pdb.Message)
	}
	if f, ok := by["info v1 Endpoints shop/legacy"]; !ok || strings.Contains(f.Message, "helm upgrade") {
		t.Errorf("Endpoints info (deprecated, no removal announced): %+v, %v", f, ok)
	}
	if f, ok := by["blocker batch/v1beta1 CronJob legacy/nightly"]; !ok || !strings.Contains(f.Source, "configmap/") {
		t.Errorf("configmap release: %+v, %v", f, ok)
	}
	if f, ok := by["unknown helm release shop/broken"]; !ok || !strings.Contains(f.Message, "base64") {
		t.Errorf("corrupt record: %+v, %v", f, ok)
	}
	for _, f := range fs {
		if strings.Contains(f.Source, "web revision 1 ") || strings.Contains(f.Source, "revision 4 ") || strings.Contains(f.Source, "revision 7 ") || strings.Contains(f.Object, "Ingress") {
			t.Errorf("finding from a revision that is not the latest deployed: %+v", f)
		}
	}
	if info := by["info Helm releases"]; info.Message != "read 5 deployed releases (6 objects) from 6 release records" {
		t.Errorf("info: %q", info.Message)
	}
}

// TestCheckHelmReleasesRemovedCRD: a release holding an
// apiextensions.k8s.io/v1beta1 CustomResourceDefinition
// (kubecost/kubecost#1425, helm/helm#7361) fails every later helm upgrade.
func TestCheckHelmReleasesRemovedCRD(t *testing.T) {
	cs := fake.NewClientset(helmSecret(t, "kubecost", "cost-analyzer", 3, rspb.StatusDeployed, crdV1beta1+"---\n"+currentDeployment))
	for _, target := range []Version{{1, 22}, {1, 37}} {
		by := findingsBy(CheckHelmReleases(context.Background(), cs, NewAPITable(), target))
		f, ok := by["blocker apiextensions.k8s.io/v1beta1 CustomResourceDefinition widgets.example.com"]
		if !ok {
			t.Fatalf("target %s: no blocker for the release's CRD: %+v", target, by)
		}
		if f.RemovedRelease != "1.22" || !strings.Contains(f.Message, "helm upgrade") || !strings.Contains(f.Source, "kubecost/cost-analyzer revision 3") {
			t.Errorf("target %s: %+v", target, f)
		}
	}
}
