// Package testbed runs the real programs of a small Kubernetes cluster on
// 127.0.0.1 for end-to-end tests and demos: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok (which simulates the nodes
// and their pods), and optionally two Prometheus replicas, a Thanos sidecar
// for each and a Thanos Query that deduplicates them, and Karpenter's kwok
// provider (Options.Karpenter).
//
// Every program runs in its own process group with its log in
// <Dir>/logs/<name>.log, on free ports, with its state in a temporary
// directory; Stop ends them all. The binaries are built by
// internal/testbed/deps.sh (make testbed-deps) into CacheDir().
//
// Tests use ForTest; a demo or a tool uses Start and Stop.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Testbed is a running testbed. Its exported fields are set by Start and
// must not be changed.
type Testbed struct {
	Dir            string               // state, configuration, logs (logs/<name>.log)
	Kubeconfig     string               // path of an admin kubeconfig (CA-verified TLS, token in system:masters)
	APIServerURL   string               // https://127.0.0.1:<port>
	Client         kubernetes.Interface // admin client
	PrometheusURLs []string             // http://127.0.0.1:<port> of each replica (with Options.Prometheus)
	ThanosQueryURL string               // http://127.0.0.1:<port> (with Options.Prometheus)
	// KarpenterMetricsURL is http://127.0.0.1:<port>/metrics of Karpenter
	// (with Options.Karpenter); SetScrapeTargets can have Prometheus scrape it.
	KarpenterMetricsURL string
	Binaries            Binaries

	o          Options
	ownDir     bool
	pki        *pki
	adminToken string

	mu      sync.Mutex
	procs   []*Process
	stopped bool
	stopErr error

	prom *promStack

	kwokArgs   []string
	kwokHealth string
}

// Timeouts of the start-up steps; generous for a loaded 2-core machine.
const (
	etcdTimeout      = 60 * time.Second
	apiserverTimeout = 120 * time.Second
	componentTimeout = 120 * time.Second
	thanosTimeout    = 120 * time.Second
)

// Ports used by the control plane and by the Prometheus stack.
const (
	cpPorts   = 6  // etcd client and peer, apiserver, controller-manager, scheduler, kwok
	promPorts = 10 // 2 Prometheus, 2 sidecars x (gRPC, HTTP), Thanos Query HTTP and gRPC, store gateway gRPC and HTTP
)

// serviceCIDR is the apiserver's --service-cluster-ip-range; nothing is ever
// sent to it.
const serviceCIDR = "10.96.0.0/16"

// Start runs a testbed and returns once every program is ready: the
// apiserver's /readyz answers ok, the default ServiceAccount exists,
// kube-controller-manager, kube-scheduler and kwok answer their health
// checks, and (with Options.Prometheus) Thanos Query sees both sidecars. On
// error, whatever did start is stopped. ctx bounds the start only; the
// programs run until Stop.
func Start(ctx context.Context, o Options) (_ *Testbed, err error) {
	o.defaults()
	bins, err := findBinaries(o)
	if err != nil {
		return nil, err
	}
	tb := &Testbed{o: o, Binaries: bins}
	if o.Dir == "" {
		if tb.Dir, err = os.MkdirTemp("", "upgradeguard-testbed-"); err != nil {
			return nil, err
		}
		tb.ownDir = true
	} else {
		if tb.Dir, err = filepath.Abs(o.Dir); err != nil {
			return nil, err
		}
		if err = os.MkdirAll(tb.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	register(tb)
	defer func() {
		if err != nil {
			// Keep the logs of a failed start; the error says where they are.
			tb.o.KeepDir = true
			logDir := filepath.Join(tb.Dir, "logs")
			o.Logf("testbed: start failed, stopping (logs in %s)", logDir)
			_ = tb.Stop()
			err = &StartError{Err: err, LogDir: logDir, ownDir: tb.ownDir}
		}
	}()

	began := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	// All ports are reserved up front, so that no port one step releases for
	// its program can be handed to the other step.
	nports := cpPorts
	if o.Prometheus {
		nports += promPorts
	}
	if o.Karpenter {
		nports += karpenterPorts
	}
	ps, ports, err := reservePorts(nports)
	if err != nil {
		return nil, err
	}
	defer ps.releaseAll()
	run := func(f func(context.Context, *portSet, []int) error, ports []int) {
		wg.Go(func() {
			if err := f(ctx, ps, ports); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
				cancel(err) // the other start-up steps give up too
			}
		})
	}
	startCP := tb.startControlPlane
	if o.Karpenter {
		// Karpenter needs the apiserver; it starts once the control plane is ready.
		kp := ports[len(ports)-karpenterPorts:]
		startCP = func(ctx context.Context, ps *portSet, ports []int) error {
			if err := tb.startControlPlane(ctx, ps, ports); err != nil {
				return err
			}
			return tb.startKarpenter(ctx, ps, kp)
		}
	}
	run(startCP, ports[:cpPorts])
	if o.Prometheus {
		run(tb.startPrometheus, ports[cpPorts:cpPorts+promPorts])
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o.Logf("testbed: ready in %s (dir %s)", time.Since(began).Round(time.Millisecond), tb.Dir)
	return tb, nil
}

// startControlPlane runs etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, and waits until they are ready.
func (tb *Testbed) startControlPlane(ctx context.Context, ps *portSet, ports []int) (err error) {
	o := tb.o
	began := time.Now()
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	tb.pki, err = genPKI(filepath.Join(tb.Dir, "pki"), net.ParseIP("10.96.0.1"))
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	ps.release(etcdClient, etcdPeer)
	etcd, err := tb.startProcTier("etcd", 2, tb.Binaries.Etcd,
		"--name=testbed",
		"--data-dir="+filepath.Join(tb.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=testbed="+peerURL,
		"--unsafe-no-fsync", // test data: durability does not matter, speed does
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := waitProcs(ctx, etcdTimeout, "etcd /health", []*Process{etcd}, httpOK(etcdURL+"/health", `"health":"true"`)); err != nil {
		return err
	}
	o.Logf("testbed: etcd ready after %s", since(began))

	// Static tokens: the admin (system:masters), the controller-manager and the
	// scheduler (whose users the RBAC bootstrap policy binds to their roles).
	tb.adminToken = randomToken()
	kcmToken, schedToken := randomToken(), randomToken()
	tokenFile := filepath.Join(tb.Dir, "tokens.csv")
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,system:kube-controller-manager,system:kube-controller-manager\n%s,system:kube-scheduler,system:kube-scheduler\n",
		tb.adminToken, kcmToken, schedToken)
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return err
	}
	tb.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	tb.Kubeconfig = filepath.Join(tb.Dir, "admin.kubeconfig")
	kcmKubeconfig := filepath.Join(tb.Dir, "controller-manager.kubeconfig")
	schedKubeconfig := filepath.Join(tb.Dir, "scheduler.kubeconfig")
	for _, k := range []struct{ path, user, token string }{
		{tb.Kubeconfig, "admin", tb.adminToken},
		{kcmKubeconfig, "system:kube-controller-manager", kcmToken},
		{schedKubeconfig, "system:kube-scheduler", schedToken},
	} {
		if err := writeKubeconfig(k.path, tb.APIServerURL, tb.pki.caPEM, k.user, k.token); err != nil {
			return err
		}
	}
	if tb.Client, err = kubernetes.NewForConfig(tb.RESTConfig()); err != nil {
		return err
	}

	// kube-apiserver
	ps.release(apiPort)
	// The default reconciler would publish 127.0.0.1 as the endpoint of
	// the kubernetes Service, which validation rejects (loopback), forever.
	reconciler := []string{"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"}
	if o.EndpointReconciler {
		reconciler = []string{"--advertise-address=192.0.2.10", "--endpoint-reconciler-type=lease"}
	}
	apiserver, err := tb.startProcTier("kube-apiserver", 1, tb.Binaries.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", reconciler[0], reconciler[1],
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(tb.Dir, "kube-apiserver"),
		"--tls-cert-file="+tb.pki.ServingCert, "--tls-private-key-file="+tb.pki.ServingKey,
		"--client-ca-file="+tb.pki.CACert,
		// Published in kube-system/extension-apiserver-authentication, where
		// the delegated authentication of kube-controller-manager and
		// kube-scheduler looks for it (they log errors every second without).
		"--requestheader-client-ca-file="+tb.pki.CACert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+tb.pki.SAPub,
		"--service-account-signing-key-file="+tb.pki.SAKey,
		"--service-cluster-ip-range="+serviceCIDR,
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	readyz := func(ctx context.Context) (bool, error) {
		body, err := tb.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %s", err, truncate(string(body), 300))
		}
		return strings.TrimSpace(string(body)) == "ok", nil
	}
	if err := waitProcs(ctx, apiserverTimeout, "kube-apiserver /readyz", []*Process{etcd, apiserver}, readyz); err != nil {
		return err
	}
	o.Logf("testbed: kube-apiserver ready after %s", since(began))

	// kube-controller-manager, kube-scheduler, kwok
	ps.release(kcmPort, schedPort, kwokPort)
	kcm, err := tb.startProc("kube-controller-manager", tb.Binaries.ControllerManager,
		append([]string{
			"--kubeconfig=" + kcmKubeconfig,
			"--authentication-kubeconfig=" + kcmKubeconfig,
			"--authorization-kubeconfig=" + kcmKubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", kcmPort),
			"--cert-dir=" + filepath.Join(tb.Dir, "kube-controller-manager"),
			"--controllers=*",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + tb.pki.SAKey,
			"--root-ca-file=" + tb.pki.CACert,
			"--cluster-signing-cert-file=" + tb.pki.CACert,
			"--cluster-signing-key-file=" + tb.pki.CAKey,
			"--node-monitor-grace-period=" + o.NodeMonitorGracePeriod.String(),
			"--node-monitor-period=2s",
			"--profiling=false",
		}, append(o.clientRateFlags(), o.syncFlags()...)...)...,
	)
	if err != nil {
		return err
	}
	schedArgs := []string{
		"--authentication-kubeconfig=" + schedKubeconfig,
		"--authorization-kubeconfig=" + schedKubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--cert-dir=" + filepath.Join(tb.Dir, "kube-scheduler"),
	}
	if o.LightScheduling {
		// The scheduler ignores its --kubeconfig, --leader-elect,
		// --profiling and --kube-api-* flags when given a --config.
		path := filepath.Join(tb.Dir, "kube-scheduler.yaml")
		if err := os.WriteFile(path, o.schedulerConfig(schedKubeconfig), 0o644); err != nil {
			return err
		}
		schedArgs = append(schedArgs, "--config="+path)
	} else {
		schedArgs = append(schedArgs, "--kubeconfig="+schedKubeconfig, "--leader-elect=false", "--profiling=false")
		schedArgs = append(schedArgs, o.clientRateFlags()...)
	}
	sched, err := tb.startProc("kube-scheduler", tb.Binaries.Scheduler, schedArgs...)
	if err != nil {
		return err
	}
	kwokConfigs := []string{tb.Binaries.KwokStages}
	if o.KwokParallelism > 0 {
		path := filepath.Join(tb.Dir, "kwok-options.yaml")
		if err := os.WriteFile(path, kwokOptions(o.KwokParallelism), 0o644); err != nil {
			return err
		}
		kwokConfigs = append(kwokConfigs, path)
	}
	tb.kwokArgs = []string{
		"--kubeconfig=" + tb.Kubeconfig,
		"--config=" + strings.Join(kwokConfigs, ","),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + KwokAnnotation + "=" + KwokAnnotationValue,
		fmt.Sprintf("--node-lease-duration-seconds=%d", o.NodeLeaseDurationSeconds),
		fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort),
		// Simulated addresses: the nodes' InternalIP and the pods' hostIP are
		// 127.0.0.1; pod IPs come from this range and are never contacted.
		"--node-ip=127.0.0.1",
		"--cidr=10.0.0.1/16",
	}
	tb.kwokHealth = fmt.Sprintf("http://127.0.0.1:%d/healthz", kwokPort)
	kwok, err := tb.startProc("kwok", tb.Binaries.Kwok, tb.kwokArgs...)
	if err != nil {
		return err
	}
	all := []*Process{etcd, apiserver, kcm, sched, kwok}
	checks := []struct {
		what string
		cond func(context.Context) (bool, error)
	}{
		{"kube-controller-manager /healthz", httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "ok")},
		{"kube-scheduler /healthz", httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), "ok")},
		{"kwok /healthz", httpOK(tb.kwokHealth, "")},
		{"the default ServiceAccount", func(ctx context.Context) (bool, error) {
			_, err := tb.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err == nil, err
		}},
	}
	for _, c := range checks {
		if err := waitProcs(ctx, componentTimeout, c.what, all, c.cond); err != nil {
			return err
		}
		o.Logf("testbed: %s ok after %s", c.what, since(began))
	}
	o.Logf("testbed: control plane ready after %s", since(began))
	return nil
}

// restartKwok stops kwok and starts it again with the same flags, so that it
// lists the nodes it manages anew.
func (tb *Testbed) restartKwok(ctx context.Context) error {
	for _, p := range tb.Processes() {
		if exited, _ := p.Exited(); p.Name == "kwok" && !exited {
			if err := p.Stop(); err != nil {
				return fmt.Errorf("stopping kwok: %w", err)
			}
		}
	}
	kwok, err := tb.startProc("kwok", tb.Binaries.Kwok, tb.kwokArgs...)
	if err != nil {
		return err
	}
	return waitProcs(ctx, componentTimeout, "kwok /healthz after a restart", []*Process{kwok}, httpOK(tb.kwokHealth, ""))
}

// RESTConfig returns a new admin client configuration.
func (tb *Testbed) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            tb.APIServerURL,
		BearerToken:     tb.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), tb.pki.caPEM...)},
		QPS:             100,
		Burst:           200,
	}
}

func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testbed"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["testbed"] = &clientcmdapi.Context{Cluster: "testbed", AuthInfo: user}
	cfg.CurrentContext = "testbed"
	return clientcmd.WriteToFile(*cfg, path)
}

// StartProcess runs another program under the testbed's lifecycle: argv[0]
// is the program (a path, or a name looked up in PATH), argv[1:] its
// arguments, env is added to the test binary's environment. It runs in its
// own process group with its output in <Dir>/logs/<name>.log, and is stopped
// by Stop (or earlier by Process.Stop).
func (tb *Testbed) StartProcess(name string, argv []string, env []string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("StartProcess: empty argv")
	}
	return tb.startProcEnv(name, 0, argv[0], argv[1:], env)
}

func (tb *Testbed) startProc(name, path string, args ...string) (*Process, error) {
	return tb.startProcEnv(name, 0, path, args, nil)
}

// startProcTier starts a server that Stop stops after the lower tiers.
func (tb *Testbed) startProcTier(name string, tier int, path string, args ...string) (*Process, error) {
	return tb.startProcEnv(name, tier, path, args, nil)
}

func (tb *Testbed) startProcEnv(name string, tier int, path string, args, env []string) (*Process, error) {
	if strings.ContainsAny(name, `/\`) || name == "" {
		return nil, fmt.Errorf("bad process name %q", name)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.stopped {
		return nil, fmt.Errorf("starting %s: the testbed is stopped", name)
	}
	for _, p := range tb.procs {
		if exited, _ := p.Exited(); p.Name == name && !exited {
			return nil, fmt.Errorf("starting %s: a process of that name is running (pid %d)", name, p.Pid())
		}
	}
	p, err := startProcess(filepath.Join(tb.Dir, "logs"), tb.Dir, name, path, args, env)
	if err != nil {
		return nil, err
	}
	p.tier = tier
	tb.procs = append(tb.procs, p)
	return p, nil
}

// Processes returns the processes started so far, in start order.
func (tb *Testbed) Processes() []*Process {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]*Process(nil), tb.procs...)
}

// Stop ends every process: SIGTERM to each process group, SIGKILL after a few
// seconds, and waits for them. It then removes Dir if Start created it (unless
// KeepDir). It is idempotent and safe to call concurrently.
func (tb *Testbed) Stop() error {
	tb.mu.Lock()
	if tb.stopped {
		tb.mu.Unlock()
		return tb.stopErr
	}
	tb.stopped = true
	procs := append([]*Process(nil), tb.procs...)
	tb.mu.Unlock()
	defer unregister(tb)

	began := time.Now()
	// Clients first, then kube-apiserver, then etcd: etcd's graceful stop
	// waits for the apiserver's watch streams, the apiserver for its clients.
	maxTier := 0
	for _, p := range procs {
		maxTier = max(maxTier, p.tier)
	}
	for tier := 0; tier <= maxTier; tier++ {
		var wg sync.WaitGroup
		for _, p := range procs {
			if p.tier == tier {
				wg.Go(func() { _ = p.Stop() })
			}
		}
		wg.Wait()
	}
	var killed []string
	for _, p := range procs {
		if p.killed {
			killed = append(killed, p.Name)
		}
	}
	if len(procs) > 0 {
		tb.o.Logf("testbed: %d processes stopped in %s (SIGKILL needed: %v)", len(procs), since(began), killed)
	}
	var errs []error
	for _, p := range procs {
		// The group must be empty now: kill(-pgid, 0) fails with ESRCH.
		if err := syscall.Kill(-p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("process group %d (%s) still exists after stop", p.Pid(), p.Name))
		}
	}
	if tb.ownDir && !tb.o.KeepDir {
		if err := os.RemoveAll(tb.Dir); err != nil {
			errs = append(errs, err)
		}
	} else if tb.ownDir {
		tb.o.Logf("testbed: kept %s", tb.Dir)
	}
	tb.mu.Lock()
	tb.stopErr = errors.Join(errs...)
	tb.mu.Unlock()
	return tb.stopErr
}

// DumpLogs writes the last 200 lines of each process log to w.
func (tb *Testbed) DumpLogs(w io.Writer) {
	for _, p := range tb.Processes() {
		state := "running"
		if exited, err := p.Exited(); exited {
			state = fmt.Sprintf("exited: %v", err)
		}
		fmt.Fprintf(w, "===== %s (pid %d, %s): last lines of %s =====\n", p.Name, p.Pid(), state, p.LogPath)
		for _, l := range p.tail(200) {
			fmt.Fprintln(w, l)
		}
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }
