package deploy_test

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// secureComponent protects /metrics with TLS and basic auth; an overlay
// adds it under components:.
const secureComponent = "components/secure"

// The Secrets the secure component reads, and what each holds.
const (
	tlsSecret = "upgradeguard-exporter-tls" // tls.crt, tls.key, ca.crt
	webSecret = "upgradeguard-exporter-web" // web-config.yml, username, password
)

// buildWith builds a kustomization that, as a user's overlay would, takes
// overlay as its resource and adds components. kustomize refuses absolute
// paths, so the deploy tree is copied into an in-memory filesystem beside
// the new kustomization.
func buildWith(t *testing.T, overlay string, components ...string) bundle {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".example") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/deploy", filepath.ToSlash(p)), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{"../" + overlay},
	}
	var comps []string
	for _, c := range components {
		comps = append(comps, "../"+c)
	}
	k["components"] = comps
	data, err := yaml.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.WriteFile("/deploy/test-overlay/kustomization.yaml", data); err != nil {
		t.Fatal(err)
	}
	name := overlay + "+" + strings.Join(components, "+")
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/deploy/test-overlay")
	if err != nil {
		t.Fatalf("kustomize build of %s: %v", name, err)
	}
	b := bundle{dir: name}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(y, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b.objs = append(b.objs, &unstructured.Unstructured{Object: m})
	}
	return b
}

// mountedFile finds the volume mount of c holding the file at p and returns
// the volume and the file's path inside it.
func mountedFile(pod *corev1.PodSpec, c *corev1.Container, p string) (*corev1.Volume, *corev1.VolumeMount, string) {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/"); ok {
			for j := range pod.Volumes {
				if pod.Volumes[j].Name == m.Name {
					return &pod.Volumes[j], m, rel
				}
			}
		}
	}
	return nil, nil, ""
}

// secretItems lists, for a secret or projected volume, the files it makes
// as path -> "secret/key".
func secretItems(v *corev1.Volume) map[string]string {
	out := map[string]string{}
	add := func(name string, items []corev1.KeyToPath) {
		for _, it := range items {
			out[it.Path] = name + "/" + it.Key
		}
	}
	if v.Secret != nil {
		add(v.Secret.SecretName, v.Secret.Items)
	}
	if v.Projected != nil {
		for _, s := range v.Projected.Sources {
			if s.Secret != nil {
				add(s.Secret.Name, s.Secret.Items)
			}
		}
	}
	return out
}

// TestSecureComponent builds the secure component with each overlay and
// checks that the pieces agree: the exporter's --web.config.file is a
// mounted file of the web Secret with the certificate and key beside it
// (its relative paths), the files are readable by the exporter's UID only
// through its group, the Service targets the renamed https port, the
// ServiceMonitor scrapes that port over HTTPS with the TLS Secret's CA, the
// Service's DNS name and the web Secret's user, and the probes stay on the
// health port in plain HTTP.
func TestSecureComponent(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			b := buildWith(t, overlay, secureComponent)
			d := b.deployment(t)
			pod := &d.Spec.Template.Spec
			c := exporterContainer(t, d)
			args, err := parseArgs(c.Args)
			if err != nil {
				t.Fatalf("the exporter rejects the container args %q: %v", c.Args, err)
			}
			checkProbes(t, c, args)

			webConfig := *args.cfg.Web.WebConfigFile
			if webConfig == "" {
				t.Fatal("no --web.config.file in the container args")
			}
			vol, mount, rel := mountedFile(pod, c, webConfig)
			if vol == nil {
				t.Fatalf("--web.config.file %s is on no volume mount %+v", webConfig, c.VolumeMounts)
			}
			if !mount.ReadOnly {
				t.Errorf("volume mount %s is not read-only", mount.Name)
			}
			items := secretItems(vol)
			dir := path.Dir(rel)
			for file, want := range map[string]string{
				rel:                       webSecret + "/web-config.yml",
				path.Join(dir, "tls.crt"): tlsSecret + "/tls.crt",
				path.Join(dir, "tls.key"): tlsSecret + "/tls.key",
			} {
				if items[file] != want {
					t.Errorf("volume %s: %s comes from %q, want %s (files %v)", vol.Name, file, items[file], want, items)
				}
			}
			if _, ok := items[path.Join(dir, "ca.crt")]; ok {
				t.Error("the exporter mounts ca.crt, which it does not use")
			}
			// Mode 0440: readable through the fsGroup the kubelet gives the
			// files, not by other users of the node.
			if vol.Projected == nil || vol.Projected.DefaultMode == nil || *vol.Projected.DefaultMode&0o007 != 0 {
				t.Errorf("volume %s: want a projected volume without world-readable files", vol.Name)
			} else if fsg := pod.SecurityContext.FSGroup; *vol.Projected.DefaultMode&0o040 == 0 || fsg == nil || *fsg != *pod.SecurityContext.RunAsGroup {
				t.Errorf("volume %s mode %o with fsGroup %v: the exporter (group %d) cannot read it", vol.Name, *vol.Projected.DefaultMode, fsg, *pod.SecurityContext.RunAsGroup)
			}

			// The example web config names the mounted files by relative
			// paths and leaves nothing but the hash to fill in.
			ex, err := os.ReadFile(filepath.Join(secureComponent, "web-config.yml.example"))
			if err != nil {
				t.Fatal(err)
			}
			var wc struct {
				TLS struct {
					CertFile string `json:"cert_file"`
					KeyFile  string `json:"key_file"`
				} `json:"tls_server_config"`
				Users map[string]string `json:"basic_auth_users"`
			}
			if err := yaml.Unmarshal(ex, &wc); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(ex), hashPlaceholder) {
				t.Errorf("web-config.yml.example has no %s for deploy/README.md's sed to replace", hashPlaceholder)
			}
			if wc.TLS.CertFile != "tls.crt" || wc.TLS.KeyFile != "tls.key" || len(wc.Users) != 1 {
				t.Errorf("web-config.yml.example: cert_file %q, key_file %q, users %v; want tls.crt, tls.key and one user", wc.TLS.CertFile, wc.TLS.KeyFile, wc.Users)
			}

			// The Service and the ServiceMonitor follow the renamed port.
			port := listenPort(t, *args.cfg.Web.WebListenAddresses)
			var portName string
			for _, p := range c.Ports {
				if p.ContainerPort == port {
					portName = p.Name
				}
			}
			if portName != "https" {
				t.Errorf("the metrics port %d is named %q, want https", port, portName)
			}
			var svc corev1.Service
			decode(t, b.find(t, "Service", "upgradeguard-exporter"), &svc)
			var svcPort string
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.StrVal == portName || p.TargetPort.IntVal == port {
					svcPort = p.Name
				}
				if p.TargetPort.StrVal == "health" {
					t.Errorf("the Service exposes the health port as %s", p.Name)
				}
			}
			if svcPort == "" {
				t.Fatalf("Service ports %+v: none targets the metrics port", svc.Spec.Ports)
			}
			ep := serviceMonitorEndpoint(t, b)
			if ep.Port != svcPort || ep.Scheme != "https" {
				t.Errorf("ServiceMonitor endpoint port %q scheme %q, want %q https", ep.Port, ep.Scheme, svcPort)
			}
			if ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil || ep.TLSConfig.CA.Secret.Name != tlsSecret || ep.TLSConfig.CA.Secret.Key != "ca.crt" {
				t.Errorf("ServiceMonitor tlsConfig %+v: want the CA from %s ca.crt", ep.TLSConfig, tlsSecret)
			} else {
				if want := svc.Name + "." + svc.Namespace + ".svc"; ep.TLSConfig.ServerName != want {
					t.Errorf("ServiceMonitor serverName %q, want %q (the name the certificate is issued for)", ep.TLSConfig.ServerName, want)
				}
				if ep.TLSConfig.InsecureSkipVerify {
					t.Error("ServiceMonitor skips certificate verification")
				}
			}
			if ep.BasicAuth == nil || ep.BasicAuth.Username.Name != webSecret || ep.BasicAuth.Username.Key != "username" ||
				ep.BasicAuth.Password.Name != webSecret || ep.BasicAuth.Password.Key != "password" {
				t.Errorf("ServiceMonitor basicAuth %+v: want username and password from %s", ep.BasicAuth, webSecret)
			}
		})
	}
}

// checkProbes checks the liveness and readiness probes GET /healthz and
// /readyz in plain HTTP on the port of --web.health-address, and not on the
// metrics port, whose web config may demand TLS and credentials.
func checkProbes(t *testing.T, c *corev1.Container, args *parsedArgs) {
	t.Helper()
	if args.cfg.Web.HealthAddress == "" {
		t.Fatal("no --web.health-address: the probes would need the metrics port's credentials")
	}
	health := listenPort(t, []string{args.cfg.Web.HealthAddress})
	metrics := listenPort(t, *args.cfg.Web.WebListenAddresses)
	if health == metrics {
		t.Fatalf("--web.health-address and --web.listen-address share port %d", health)
	}
	for _, pr := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET of %s", pr.what, pr.path)
			continue
		}
		g := pr.probe.HTTPGet
		port, err := containerPort(c, g.Port.String())
		if err != nil {
			t.Errorf("%s probe: %v", pr.what, err)
			continue
		}
		if g.Path != pr.path || port != health {
			t.Errorf("%s probe GETs %s on port %d, want %s on the health port %d", pr.what, g.Path, port, pr.path, health)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s probe scheme %s: the health listener speaks plain HTTP", pr.what, g.Scheme)
		}
		if len(g.HTTPHeaders) > 0 {
			t.Errorf("%s probe sends headers %v: it needs no credentials", pr.what, g.HTTPHeaders)
		}
	}
	// Liveness must not kill a pod whose informers are still listing a
	// large cluster: only readiness waits for the sync.
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/readyz" {
		t.Error("liveness on /readyz restarts the exporter during a long initial sync")
	}
}

// containerPort resolves a probe's port (a number or a container port's
// name) as the kubelet does (k8s.io/kubernetes pkg/probe/util.go
// ResolveContainerPort).
func containerPort(c *corev1.Container, port string) (int32, error) {
	var n int32
	if _, err := fmt.Sscanf(port, "%d", &n); err == nil && fmt.Sprint(n) == port {
		return n, nil
	}
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port })
	if i < 0 {
		return 0, fmt.Errorf("no container port named %q", port)
	}
	return c.Ports[i].ContainerPort, nil
}

// endpoint is the part of a ServiceMonitor endpoint the scrape depends on.
type endpoint struct {
	Port        string `json:"port"`
	Path        string `json:"path"`
	Scheme      string `json:"scheme"`
	HonorLabels bool   `json:"honorLabels"`
	TLSConfig   *struct {
		CA struct {
			Secret *corev1.SecretKeySelector `json:"secret"`
		} `json:"ca"`
		ServerName         string `json:"serverName"`
		InsecureSkipVerify bool   `json:"insecureSkipVerify"`
	} `json:"tlsConfig"`
	BasicAuth *struct {
		Username corev1.SecretKeySelector `json:"username"`
		Password corev1.SecretKeySelector `json:"password"`
	} `json:"basicAuth"`
	Relabelings []struct {
		SourceLabels []string `json:"sourceLabels"`
		TargetLabel  string   `json:"targetLabel"`
		Replacement  *string  `json:"replacement"`
		Regex        string   `json:"regex"`
		Action       string   `json:"action"`
	} `json:"relabelings"`
}

// serviceMonitorEndpoint is the exporter's ServiceMonitor's single endpoint.
func serviceMonitorEndpoint(t *testing.T, b bundle) endpoint {
	t.Helper()
	sm := b.find(t, "ServiceMonitor", "upgradeguard-exporter")
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v, want one", eps)
	}
	data, err := yaml.Marshal(eps[0])
	if err != nil {
		t.Fatal(err)
	}
	var ep endpoint
	if err := yaml.Unmarshal(data, &ep); err != nil {
		t.Fatal(err)
	}
	return ep
}
