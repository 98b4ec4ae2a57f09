package deploy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// hashPlaceholder is what deploy/README.md replaces with the bcrypt hash.
const hashPlaceholder = "REPLACE-WITH-THE-BCRYPT-HASH"

// secrets are Secret contents by name and key.
type secrets map[string]map[string][]byte

// makeSecureSecrets creates what deploy/README.md tells the operator to
// create before installing the secure component: a serving certificate for
// the name the ServiceMonitor verifies, signed by a new CA (the TLS Secret,
// in cert-manager's form), and the web Secret holding the shipped example
// web config with the bcrypt hash of a new password, and that user and
// password for Prometheus.
func makeSecureSecrets(t *testing.T, serverName string) secrets {
	t.Helper()
	ca, err := testbed.NewCA("upgradeguard-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(serverName, serverName)
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(secureComponent, "web-config.yml.example"))
	if err != nil {
		t.Fatal(err)
	}
	var wc struct {
		Users map[string]string `json:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(example, &wc); err != nil {
		t.Fatal(err)
	}
	if len(wc.Users) != 1 {
		t.Fatalf("web-config.yml.example has users %v, want one", wc.Users)
	}
	var user string
	for u := range wc.Users {
		user = u
	}
	password := "pw-" + fmt.Sprint(time.Now().UnixNano())
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	// As deploy/README.md's sed does.
	if !bytes.Contains(example, []byte(hashPlaceholder)) {
		t.Fatalf("web-config.yml.example has no %s for the README's sed to replace", hashPlaceholder)
	}
	webConfig := bytes.ReplaceAll(example, []byte(hashPlaceholder), hash)
	return secrets{
		tlsSecret: {"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": ca.CertPEM},
		webSecret: {"web-config.yml": webConfig, "username": []byte(user), "password": []byte(password)},
	}
}

func (s secrets) get(t *testing.T, name, key string) []byte {
	t.Helper()
	v, ok := s[name][key]
	if !ok {
		t.Fatalf("Secret %s has no key %q (keys %v): the bundle and the documented Secrets disagree", name, key, s[name])
	}
	return v
}

// objects are the Secrets as API objects.
func (s secrets) objects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for name, data := range s {
		sec := &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		if name == tlsSecret {
			sec.Type = corev1.SecretTypeTLS
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// mountVolumes does the kubelet's part for the Secrets: each volume mount
// of c becomes a directory under root holding the files its secret or
// projected volume names (with their modes), and the result maps each
// mountPath to its directory.
func mountVolumes(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, s secrets, root string) map[string]string {
	t.Helper()
	mounts := map[string]string{}
	for i, m := range c.VolumeMounts {
		var vol *corev1.Volume
		for j := range pod.Volumes {
			if pod.Volumes[j].Name == m.Name {
				vol = &pod.Volumes[j]
			}
		}
		if vol == nil {
			t.Fatalf("volume mount %s names no volume", m.Name)
		}
		dir := filepath.Join(root, fmt.Sprintf("mount-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if vol.Projected != nil && vol.Projected.DefaultMode != nil {
			mode = os.FileMode(*vol.Projected.DefaultMode)
		}
		if vol.Secret != nil && vol.Secret.DefaultMode != nil {
			mode = os.FileMode(*vol.Secret.DefaultMode)
		}
		for file, ref := range secretItems(vol) {
			name, key, _ := strings.Cut(ref, "/")
			p := filepath.Join(dir, file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, s.get(t, name, key), mode); err != nil {
				t.Fatal(err)
			}
		}
		mounts[m.MountPath] = dir
	}
	return mounts
}

// kubeletProbe makes the request the kubelet makes for an HTTP GET probe
// of container c in a pod at podIP, with containerPorts mapped to the
// loopback ports the test's process listens on: scheme (lower-cased, HTTP
// when empty), host (the pod IP unless set), port (a number or a container
// port's name), path, the probe's headers, and User-Agent kube-probe/<v>
// and Accept */* unless given (k8s.io/kubernetes pkg/probe/http/request.go
// NewRequestForHTTPGetAction); over TLS without verifying the certificate,
// without keep-alive, within timeoutSeconds; a status from 200 to 399 is
// success (pkg/probe/http/http.go).
func kubeletProbe(ctx context.Context, p *corev1.Probe, c *corev1.Container, ports map[int32]int) error {
	g := p.HTTPGet
	if g == nil {
		return errors.New("not an HTTP GET probe")
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := g.Host
	if host == "" {
		host = "127.0.0.1" // the pod IP: here, the loopback the process listens on
	}
	cport, err := containerPort(c, g.Port.String())
	if err != nil {
		return err
	}
	port, ok := ports[cport]
	if !ok {
		return fmt.Errorf("container port %d is not listened on", cport)
	}
	url := scheme + "://" + net.JoinHostPort(host, fmt.Sprint(port)) + g.Path
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", "kube-probe/1.37")
	}
	if _, ok := req.Header["Accept"]; !ok {
		req.Header.Set("Accept", "*/*")
	}
	req.Host = req.Header.Get("Host")
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet's prober
		DisableKeepAlives: true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusBadRequest {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// scrapeConfigFor renders a ServiceMonitor endpoint into a Prometheus
// scrape configuration, as the Prometheus Operator does (its
// pkg/prometheus/promcfg.go generateServiceMonitorConfig): scheme, path,
// honor_labels, tls_config with the CA and server name, basic_auth with the
// user and password read from their Secrets (written to files here), and
// the endpoint's relabelings.
func scrapeConfigFor(t *testing.T, ep endpoint, s secrets, dir string) testbed.ScrapeConfig {
	t.Helper()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sc := testbed.ScrapeConfig{Scheme: ep.Scheme, MetricsPath: ep.Path, HonorLabels: ep.HonorLabels}
	if tc := ep.TLSConfig; tc != nil {
		sc.TLS = &testbed.ScrapeTLS{ServerName: tc.ServerName, InsecureSkipVerify: tc.InsecureSkipVerify}
		if ca := tc.CA.Secret; ca != nil {
			sc.TLS.CAFile = write("scrape-ca.crt", s.get(t, ca.Name, ca.Key))
		}
	}
	if ba := ep.BasicAuth; ba != nil {
		sc.BasicAuth = &testbed.ScrapeBasicAuth{
			Username:     string(s.get(t, ba.Username.Name, ba.Username.Key)),
			PasswordFile: write("scrape-password", s.get(t, ba.Password.Name, ba.Password.Key)),
		}
	}
	for _, r := range ep.Relabelings {
		sc.RelabelConfigs = append(sc.RelabelConfigs, testbed.RelabelConfig{
			SourceLabels: r.SourceLabels, TargetLabel: r.TargetLabel, Replacement: r.Replacement, Regex: r.Regex, Action: strings.ToLower(r.Action),
		})
	}
	return sc
}

// TestSecureComponentOnTestbed runs the exporter as the secure component
// configures it and scrapes it as its ServiceMonitor says: the bundle
// (with the documented Secrets) passes the API server's validation against
// the Prometheus Operator's CRDs; the exporter starts with the container's
// arguments and the Secrets mounted as the pod spec mounts them; the
// kubelet's probe requests, made from the rendered Deployment, succeed;
// the testbed's Prometheus, given the ServiceMonitor's scheme, CA, server
// name and basic auth, scrapes the exporter's data; and scrapes without
// the credentials or without TLS are refused.
func TestSecureComponentOnTestbed(t *testing.T) {
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	bin := testbed.BuildUpgradeguard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	bundles := map[string]bundle{}
	for _, overlay := range overlays {
		bundles[overlay] = buildWith(t, overlay, secureComponent)
	}
	b := bundles[overlays[0]]
	ep := serviceMonitorEndpoint(t, b)
	if ep.TLSConfig == nil || ep.TLSConfig.ServerName == "" {
		t.Fatalf("the ServiceMonitor names no server name to issue the certificate for: %+v", ep.TLSConfig)
	}
	sec := makeSecureSecrets(t, ep.TLSConfig.ServerName)

	t.Run("server-side dry run with the Secrets", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(tb.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		a := &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(tb.Client.Discovery()))}
		installCRDs(ctx, t, a, bundles)
		for _, o := range b.ofKind("Namespace") {
			if err := a.apply(ctx, o, false); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range sec.objects(t) {
			if err := a.apply(ctx, o, false); err != nil {
				t.Fatal(err)
			}
		}
		for _, overlay := range overlays {
			for _, o := range bundles[overlay].objs {
				if err := a.apply(ctx, o, true); err != nil {
					t.Errorf("%s: %v", bundles[overlay].dir, err)
				}
			}
		}
	})

	if err := tb.CreateNode(ctx, testbed.Node{Name: "node-0", Zone: "eu-west-1a", InstanceType: "m5.large", NodeGroup: "nodes"}); err != nil {
		t.Fatal(err)
	}
	aws, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aws.Close() })

	// The pod: its Secrets mounted, each container port on a loopback port.
	d := b.deployment(t)
	c := exporterContainer(t, d)
	dir := t.TempDir()
	mounts := mountVolumes(t, &d.Spec.Template.Spec, c, sec, dir)
	ports := map[int32]int{}
	for _, p := range c.Ports {
		addr, err := testbed.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		var n int
		fmt.Sscan(port, &n)
		ports[p.ContainerPort] = n
	}
	argv := []string{bin}
	for _, a := range c.Args {
		for mountPath, local := range mounts {
			a = strings.Replace(a, "="+mountPath+"/", "="+local+"/", 1)
		}
		for _, flag := range []string{"--web.listen-address=", "--web.health-address="} {
			if rest, ok := strings.CutPrefix(a, flag); ok {
				_, p, err := net.SplitHostPort(rest)
				if err != nil {
					t.Fatalf("%s: %v", a, err)
				}
				var cp int32
				fmt.Sscan(p, &cp)
				if _, ok := ports[cp]; !ok {
					t.Fatalf("%s: port %d is no container port", a, cp)
				}
				a = fmt.Sprintf("%s127.0.0.1:%d", flag, ports[cp])
			}
		}
		argv = append(argv, a)
	}
	argv = append(argv, "--kubeconfig="+tb.Kubeconfig, "--aws.endpoint-url="+aws.URL())
	p, err := tb.StartProcess("exporter-secure", argv, []string{
		"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop() }()

	t.Run("the kubelet's probes succeed", func(t *testing.T) {
		for _, pr := range []struct {
			what  string
			probe *corev1.Probe
		}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
			err := testbed.WaitFor(ctx, 2*time.Minute, pr.what+" probe", func(ctx context.Context) (bool, error) {
				if exited, err := p.Exited(); exited {
					return false, fmt.Errorf("the exporter exited: %v", err)
				}
				err := kubeletProbe(ctx, pr.probe, c, ports)
				return err == nil, err
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, tail(p.LogPath, 20))
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Where the ServiceMonitor's port leads: Service port -> targetPort ->
	// container port -> the loopback port.
	var svc corev1.Service
	decode(t, b.find(t, "Service", "upgradeguard-exporter"), &svc)
	var target string
	for _, sp := range svc.Spec.Ports {
		if sp.Name == ep.Port {
			cp, err := containerPort(c, sp.TargetPort.String())
			if err != nil {
				t.Fatal(err)
			}
			target = fmt.Sprintf("127.0.0.1:%d", ports[cp])
		}
	}
	if target == "" {
		t.Fatalf("the ServiceMonitor's port %q is no Service port", ep.Port)
	}

	t.Run("Prometheus scrapes with the ServiceMonitor's settings", func(t *testing.T) {
		sc := scrapeConfigFor(t, ep, sec, dir)
		if err := tb.SetScrapeJob("upgradeguard-secure", []string{target}, sc); err != nil {
			t.Fatal(err)
		}
		job := "upgradeguard-secure"
		for _, r := range ep.Relabelings {
			if r.TargetLabel == "job" && r.SourceLabels == nil && r.Replacement != nil {
				job = *r.Replacement
			}
		}
		err := testbed.WaitFor(ctx, time.Minute, "the exporter's data in Prometheus", func(ctx context.Context) (bool, error) {
			up, err := tb.QueryPrometheus(ctx, 0, fmt.Sprintf(`up{job=%q}`, job))
			if err != nil || len(up) != 1 || up[0].Value != 1 {
				targets, _ := tb.Targets(ctx)
				return false, fmt.Errorf("up %v (%v); targets %+v", up, err, targets)
			}
			r, err := tb.QueryPrometheus(ctx, 0, fmt.Sprintf(`upgradeguard_node_ready{job=%q,node="node-0"}`, job))
			return err == nil && len(r) == 1, fmt.Errorf("upgradeguard_node_ready: %v (%v)", r, err)
		})
		if err != nil {
			t.Error(err)
		}
	})

	t.Run("scrapes without credentials or TLS are refused", func(t *testing.T) {
		noAuth := scrapeConfigFor(t, ep, sec, dir)
		noAuth.BasicAuth, noAuth.RelabelConfigs = nil, nil
		wrong := scrapeConfigFor(t, ep, sec, dir)
		wrong.RelabelConfigs = nil
		if wrong.BasicAuth == nil {
			t.Fatal("the ServiceMonitor has no basicAuth")
		}
		wrong.BasicAuth.PasswordFile = filepath.Join(dir, "wrong-password")
		if err := os.WriteFile(wrong.BasicAuth.PasswordFile, []byte("guess"), 0o600); err != nil {
			t.Fatal(err)
		}
		plain := testbed.ScrapeConfig{MetricsPath: ep.Path}
		refused := map[string]struct {
			cfg  testbed.ScrapeConfig
			want string
		}{
			"upgradeguard-noauth": {noAuth, "401"},
			"upgradeguard-wrong":  {wrong, "401"},
			"upgradeguard-plain":  {plain, "400"},
		}
		for job, r := range refused {
			if err := tb.SetScrapeJob(job, []string{target}, r.cfg); err != nil {
				t.Fatal(err)
			}
		}
		err := testbed.WaitFor(ctx, time.Minute, "the unauthenticated scrapes to fail", func(ctx context.Context) (bool, error) {
			targets, err := tb.Targets(ctx)
			if err != nil {
				return false, err
			}
			seen := 0
			for _, tg := range targets {
				r, ok := refused[tg.Job]
				if !ok || tg.Health == "unknown" {
					continue
				}
				if tg.Health != "down" || !strings.Contains(tg.LastError, r.want) {
					return false, fmt.Errorf("job %s: health %s, last error %q; want down with %s", tg.Job, tg.Health, tg.LastError, r.want)
				}
				seen++
			}
			return seen == len(refused), fmt.Errorf("%d of %d refused jobs scraped yet: %+v", seen, len(refused), targets)
		})
		if err != nil {
			t.Error(err)
		}
		for job := range refused {
			if err := tb.SetScrapeTargets(job, nil); err != nil {
				t.Error(err)
			}
		}
		// And directly, with the CA but no credentials.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(sec.get(t, tlsSecret, "ca.crt"))
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: ep.TLSConfig.ServerName}}}
		resp, err := client.Get("https://" + target + ep.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %s, want 401", ep.Path, resp.Status)
		}
	})
}
