// Package deploy_test builds the kustomize overlays of deploy/ with the
// kustomize Go API and checks them twice: statically (security context,
// probes, resources, container arguments parsed by the exporter's own flags,
// the Dockerfile they depend on), and against the testbed's real
// kube-apiserver, where the bundle is applied with server-side dry run and
// the exporter runs under the bundle's ServiceAccount to prove its RBAC
// sufficient and minimal.
package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/exporter"
	"github.com/upgradeguard/upgradeguard/internal/generate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// overlays are the installable kustomizations.
var overlays = []string{"overlays/kops", "overlays/eks"}

// Names the bundle and its tests agree on.
const (
	namespace      = "upgradeguard"
	serviceAccount = "upgradeguard-exporter"
	deployment     = "upgradeguard-exporter"
	container      = "exporter"
)

// bundle is the output of one kustomization.
type bundle struct {
	dir  string
	objs []*unstructured.Unstructured
}

// build runs kustomize on dir as `kustomize build` does.
func build(t *testing.T, dir string) bundle {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := bundle{dir: dir}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(y, &m); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		b.objs = append(b.objs, &unstructured.Unstructured{Object: m})
	}
	return b
}

// find returns the object of that kind and name, failing the test when there is none.
func (b bundle) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range b.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("%s: no %s %s in the build", b.dir, kind, name)
	return nil
}

func (b bundle) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range b.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// decode converts an object of the build into its typed form, rejecting
// fields the type does not have (a misspelt securityContext field would
// otherwise vanish silently).
func decode(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	j, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(j, into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

func (b bundle) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	decode(t, b.find(t, "Deployment", deployment), &d)
	return &d
}

func exporterContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == container {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, container)
	return nil
}

// parsedArgs is the container's command line as the upgradeguard binary
// parses it.
type parsedArgs struct {
	cmd    string
	cfg    *exporter.Config
	logCfg promslog.Config
}

// parseArgs parses the container arguments with the exporter's real flags
// (internal/exporter.AddFlags, and the application's log flags as
// cmd/upgradeguard adds them), so that a renamed or removed flag fails here
// rather than in a crash-looping pod.
func parseArgs(args []string) (*parsedArgs, error) {
	app := kingpin.New("upgradeguard", "")
	app.Terminate(nil)
	p := &parsedArgs{}
	promslogflag.AddFlags(app, &p.logCfg)
	cmd := app.Command("exporter", "")
	p.cfg = exporter.AddFlags(cmd)
	name, err := app.Parse(args)
	if err != nil {
		return nil, err
	}
	p.cmd = name
	return p, nil
}

func TestOverlaysBuild(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := build(t, dir)
			want := []string{
				"Namespace/" + namespace,
				"ServiceAccount/" + serviceAccount,
				"ClusterRole/upgradeguard-exporter",
				"ClusterRoleBinding/upgradeguard-exporter",
				"Role/upgradeguard-exporter-node-leases",
				"RoleBinding/upgradeguard-exporter-node-leases",
				"Deployment/" + deployment,
				"Service/upgradeguard-exporter",
				"ServiceMonitor/upgradeguard-exporter",
				"PodMonitor/upgradeguard-aws-node",
			}
			var got []string
			for _, o := range b.objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					t.Errorf("missing %s; built %v", w, got)
				}
			}
			for _, o := range b.objs {
				// Only the kubelet Leases' Role and binding live outside the
				// exporter's namespace.
				wantNS := namespace
				switch {
				case o.GetKind() == "Role" || o.GetKind() == "RoleBinding":
					wantNS = kube.NodeLeaseNamespace
				case slices.Contains([]string{"Namespace", "ClusterRole", "ClusterRoleBinding"}, o.GetKind()):
					wantNS = ""
				}
				if o.GetNamespace() != wantNS {
					t.Errorf("%s %s in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), wantNS)
				}
				if o.GetLabels()["app.kubernetes.io/part-of"] != "upgradeguard" {
					t.Errorf("%s %s lacks app.kubernetes.io/part-of=upgradeguard", o.GetKind(), o.GetName())
				}
			}
			// Every binding grants to the exporter's ServiceAccount in its namespace.
			for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
				for _, o := range b.ofKind(kind) {
					var rb rbacv1.RoleBinding // same subjects and roleRef as a ClusterRoleBinding
					decode(t, o, &rb)
					want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}}
					if !slices.Equal(rb.Subjects, want) {
						t.Errorf("%s %s subjects %+v, want %+v", kind, o.GetName(), rb.Subjects, want)
					}
				}
			}
		})
	}
}

func TestDeploymentHardenedAndSized(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			d := build(t, dir).deployment(t)
			pod := d.Spec.Template.Spec
			c := exporterContainer(t, d)
			if pod.ServiceAccountName != serviceAccount {
				t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, serviceAccount)
			}
			psc, csc := pod.SecurityContext, c.SecurityContext
			if psc == nil || csc == nil {
				t.Fatal("pod or container securityContext missing")
			}
			if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Errorf("pod must run as a non-root UID: runAsNonRoot %v runAsUser %v", psc.RunAsNonRoot, psc.RunAsUser)
			}
			if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("seccompProfile %+v, want RuntimeDefault", psc.SeccompProfile)
			}
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				t.Error("readOnlyRootFilesystem is not true")
			}
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Error("allowPrivilegeEscalation is not false")
			}
			if csc.Privileged != nil && *csc.Privileged {
				t.Error("privileged container")
			}
			if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
				t.Errorf("capabilities %+v, want drop [ALL] and no add", csc.Capabilities)
			}
			if len(pod.Volumes) > 0 || len(c.VolumeMounts) > 0 {
				t.Errorf("volumes %v: the exporter writes nothing and needs none", pod.Volumes)
			}

			// Sized from make bench-scale: 123 MiB resident at 1,000 nodes,
			// 288 MiB at 3,000 (see the comment in deployment.yaml).
			req, lim := c.Resources.Requests, c.Resources.Limits
			atLeast := func(what string, q resource.Quantity, min string) {
				if q.Cmp(resource.MustParse(min)) < 0 {
					t.Errorf("%s %s, want at least %s", what, q.String(), min)
				}
			}
			atLeast("memory request", req[corev1.ResourceMemory], "123Mi")
			// The 3,000-node steady state plus half again for a relist.
			atLeast("memory limit", lim[corev1.ResourceMemory], "432Mi")
			atLeast("cpu request", req[corev1.ResourceCPU], "50m")
			// A scrape at 5,000 nodes takes about 0.5 s of CPU: a limit under
			// one core would stretch it towards the scrape timeout.
			if q, ok := lim[corev1.ResourceCPU]; ok {
				atLeast("cpu limit", q, "1")
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if l, ok := lim[r]; ok && req.Name(r, resource.DecimalSI).Cmp(l) > 0 {
					t.Errorf("%s request %s above its limit %s", r, req.Name(r, resource.DecimalSI), l.String())
				}
			}

			// Probes: the exporter's own endpoints, on its health port.
			args, err := parseArgs(c.Args)
			if err != nil {
				t.Fatalf("container args %q: %v", c.Args, err)
			}
			checkProbes(t, c, args)
		})
	}
}

func listenPort(t *testing.T, addrs []string) int32 {
	t.Helper()
	if len(addrs) != 1 {
		t.Fatalf("--web.listen-address %v: want exactly one", addrs)
	}
	_, p, ok := strings.Cut(addrs[0], ":")
	var port int32
	if _, err := fmt.Sscanf(p, "%d", &port); !ok || err != nil {
		t.Fatalf("--web.listen-address %q: no port", addrs[0])
	}
	return port
}

func TestContainerArgsAreTheExportersFlags(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			d := build(t, dir).deployment(t)
			c := exporterContainer(t, d)
			if len(c.Command) > 0 {
				t.Errorf("command %v overrides the image's ENTRYPOINT", c.Command)
			}
			p, err := parseArgs(c.Args)
			if err != nil {
				t.Fatalf("the exporter rejects the container args %q: %v", c.Args, err)
			}
			if p.cmd != "exporter" {
				t.Errorf("subcommand %q, want exporter", p.cmd)
			}
			if p.cfg.Kubeconfig != "" {
				t.Errorf("--kubeconfig %q: in a pod the in-cluster configuration is wanted", p.cfg.Kubeconfig)
			}
			// Both overlays run every collector; the AWS ones need a region
			// and the cluster's tag name.
			for _, f := range []string{"collector.nodes", "collector.pdb", "collector.cni", "collector.awsquota"} {
				if !flagEnabled(t, c.Args, f) {
					t.Errorf("--%s is not enabled", f)
				}
			}
			if len(p.cfg.AWS.Regions) == 0 || p.cfg.AWS.ClusterName == "" {
				t.Errorf("AWS collectors without --aws.region (%v) or --aws.cluster-name (%q)", p.cfg.AWS.Regions, p.cfg.AWS.ClusterName)
			}
			if p.cfg.AWS.EndpointURL != "" {
				t.Errorf("--aws.endpoint-url %q in a deployment", p.cfg.AWS.EndpointURL)
			}
			img := c.Image
			if i := strings.LastIndex(img, "/"); i >= 0 {
				img = img[i+1:]
			}
			if name, _, _ := strings.Cut(img, ":"); name != "upgradeguard" {
				t.Errorf("image %q is not an upgradeguard image", c.Image)
			}
		})
	}
}

// flagEnabled tells whether the exporter, given args, runs with the boolean
// flag name on: the flag's default unless the args say otherwise.
func flagEnabled(t *testing.T, args []string, name string) bool {
	t.Helper()
	app := kingpin.New("upgradeguard", "")
	app.Terminate(nil)
	var logCfg promslog.Config
	promslogflag.AddFlags(app, &logCfg)
	cmd := app.Command("exporter", "")
	exporter.AddFlags(cmd)
	if _, err := app.Parse(args); err != nil {
		t.Fatal(err)
	}
	f := cmd.GetFlag(name)
	if f == nil {
		t.Fatalf("the exporter has no flag --%s", name)
	}
	v, ok := f.Model().Value.(kingpin.Getter)
	if !ok {
		t.Fatalf("--%s: cannot read its value", name)
	}
	on, ok := v.Get().(bool)
	if !ok {
		t.Fatalf("--%s is not a boolean flag", name)
	}
	return on
}

func TestScrapeConfiguration(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := build(t, dir)
			d := b.deployment(t)
			podLabels := d.Spec.Template.Labels
			var svc corev1.Service
			decode(t, b.find(t, "Service", "upgradeguard-exporter"), &svc)
			if !subset(svc.Spec.Selector, podLabels) || len(svc.Spec.Selector) == 0 {
				t.Errorf("Service selector %v does not select the exporter's pods %v", svc.Spec.Selector, podLabels)
			}
			var svcPort string
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.StrVal == "http" {
					svcPort = p.Name
				}
			}
			if svcPort == "" {
				t.Errorf("Service ports %+v: none targets the container port http", svc.Spec.Ports)
			}

			sm := b.find(t, "ServiceMonitor", "upgradeguard-exporter")
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			if len(sel) == 0 || !subset(sel, svc.Labels) {
				t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", sel, svc.Labels)
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(eps) != 1 || eps[0].(map[string]any)["port"] != svcPort {
				t.Errorf("ServiceMonitor endpoints %v, want the Service port %q", eps, svcPort)
			}
			if len(eps) == 1 && eps[0].(map[string]any)["honorLabels"] != true {
				t.Error("ServiceMonitor without honorLabels: the exporter's namespace label would become exported_namespace")
			}

			pm := b.find(t, "PodMonitor", "upgradeguard-aws-node")
			nsSel, _, _ := unstructured.NestedStringSlice(pm.Object, "spec", "namespaceSelector", "matchNames")
			podSel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
			pmEps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
			if !slices.Equal(nsSel, []string{"kube-system"}) || podSel["k8s-app"] != "aws-node" || len(podSel) != 1 {
				t.Errorf("PodMonitor selects namespaces %v, pods %v; want kube-system, k8s-app=aws-node", nsSel, podSel)
			}
			// aws-node declares containerPort 61678 as "metrics".
			if len(pmEps) != 1 || pmEps[0].(map[string]any)["port"] != "metrics" {
				t.Errorf("PodMonitor endpoints %v, want aws-node's port metrics (61678)", pmEps)
			}

			// The scraped series carry the jobs the generated alerts,
			// dashboards and the gate select.
			gen := generate.DefaultOptions()
			if got := relabelledJob(eps); got != gen.ExporterJob {
				t.Errorf("ServiceMonitor sets job %q, the generated rules select job %q", got, gen.ExporterJob)
			}
			if got := relabelledJob(pmEps); got != gen.AWSNodeJob {
				t.Errorf("PodMonitor sets job %q, the generated rules select job %q", got, gen.AWSNodeJob)
			}
		})
	}
}

// relabelledJob is the job a monitor's single endpoint sets through its
// relabelings (a replace with no source labels), or "".
func relabelledJob(eps []any) string {
	if len(eps) != 1 {
		return ""
	}
	rls, _, _ := unstructured.NestedSlice(eps[0].(map[string]any), "relabelings")
	job := ""
	for _, r := range rls {
		m := r.(map[string]any)
		if m["targetLabel"] == "job" && m["sourceLabels"] == nil && (m["action"] == nil || m["action"] == "replace") {
			job, _ = m["replacement"].(string)
		}
	}
	return job
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestEKSServiceAccountHasIRSARole(t *testing.T) {
	sa := build(t, "overlays/eks").find(t, "ServiceAccount", serviceAccount)
	arn := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]
	if !strings.HasPrefix(arn, "arn:aws:iam::") || !strings.Contains(arn, ":role/") {
		t.Errorf("eks.amazonaws.com/role-arn %q is not an IAM role ARN", arn)
	}
	kops := build(t, "overlays/kops").find(t, "ServiceAccount", serviceAccount)
	if _, ok := kops.GetAnnotations()["eks.amazonaws.com/role-arn"]; ok {
		t.Error("the kops overlay carries the EKS role annotation")
	}
}

// TestGeneratedMonitoring checks the generated PrometheusRule and dashboard
// ConfigMaps (deploy/generated, written by `upgradeguard generate`) are in
// the bundle once they exist.
func TestGeneratedMonitoring(t *testing.T) {
	kust, err := os.ReadFile("base/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Resources []string }
	if err := yaml.Unmarshal(kust, &k); err != nil {
		t.Fatal(err)
	}
	listed := slices.Contains(k.Resources, "../generated")
	if _, err := os.Stat("generated/kustomization.yaml"); err != nil {
		if listed {
			t.Fatalf("base lists ../generated but %v", err)
		}
		t.Skip("deploy/generated does not exist yet (upgradeguard generate writes it)")
	}
	if !listed {
		t.Fatal("deploy/generated exists but base/kustomization.yaml does not list ../generated")
	}
	for _, dir := range overlays {
		b := build(t, dir)
		if rules := b.ofKind("PrometheusRule"); len(rules) == 0 {
			t.Errorf("%s: no PrometheusRule", dir)
		}
		var dashboards int
		for _, cm := range b.ofKind("ConfigMap") {
			if cm.GetLabels()["grafana_dashboard"] == "1" {
				dashboards++
			}
		}
		if dashboards == 0 {
			t.Errorf("%s: no ConfigMap labelled grafana_dashboard=1", dir)
		}
	}
}

// TestDockerfile checks the image the Deployment runs: built static and
// trimmed, run as the UID the pod's securityContext names, with
// upgradeguard as its entrypoint and no registry host in its base images.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	var user, entrypoint, expose string
	for line := range strings.SplitSeq(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		case "EXPOSE":
			expose = f[1]
		}
	}
	for _, img := range froms {
		if first, _, ok := strings.Cut(img, "/"); ok && strings.ContainsAny(first, ".:") {
			t.Errorf("FROM %s names a registry host", img)
		}
	}
	if len(froms) < 2 {
		t.Errorf("FROM %v: want a builder stage and a runtime stage", froms)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/upgradeguard"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("the build does not use %s", want)
		}
	}
	if entrypoint != `["/upgradeguard"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/upgradeguard\"]", entrypoint)
	}
	d := build(t, overlays[0]).deployment(t)
	uid, _, _ := strings.Cut(user, ":")
	if want := fmt.Sprint(*d.Spec.Template.Spec.SecurityContext.RunAsUser); uid != want || uid == "0" {
		t.Errorf("Dockerfile USER %q, want the Deployment's runAsUser %s (numeric, so runAsNonRoot can check it)", user, want)
	}
	args, err := parseArgs(exporterContainer(t, d).Args)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(listenPort(t, *args.cfg.Web.WebListenAddresses)); expose != want {
		t.Errorf("EXPOSE %q, want %s", expose, want)
	}
	if want := exporter.DefaultListenAddress; !strings.HasSuffix(want, ":"+expose) {
		t.Errorf("EXPOSE %s is not the exporter's default %s", expose, want)
	}
}
