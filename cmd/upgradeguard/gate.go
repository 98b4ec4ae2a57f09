package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/config"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// Where the gate commands write their verdicts; tests replace them.
var (
	gateStdout io.Writer = os.Stdout
	gateStderr io.Writer = os.Stderr
)

// Exit statuses of the gate commands.
const (
	exitGo          = 0
	exitNotGo       = 1 // WAIT from check, STOP from wait
	exitUsage       = 2 // bad flags, policy or baseline
	exitUnreachable = 3 // the monitoring could not be asked at the deadline
)

// gateExit is the error of a gate command that did not end in GO.
type gateExit struct {
	code int
	msg  string
}

func (e *gateExit) Error() string { return e.msg }
func (e *gateExit) ExitCode() int { return e.code }

// logLevel: WAIT (check) and STOP (wait) are the gate's answers, logged at
// INFO; an unreachable monitoring is an error (usage errors are usageError).
func (e *gateExit) logLevel() slog.Level {
	if e.code == exitNotGo {
		return slog.LevelInfo
	}
	return slog.LevelError
}

// gateFlags are the flags shared by gate check and gate wait.
type gateFlags struct {
	url, kind                 string
	queryTimeout              time.Duration
	replicaLabels             []string
	policyFile, node          string
	nodegroup                 string
	baselineFile, output      string
	consecutive               int
	interval                  time.Duration
	httpConfigFile            string
	caFile, certFile, keyFile string
	serverName                string
	insecure                  bool
	bearerTokenFile           string
	basicUser, basicPassFile  string
	headers                   []string
}

func addGateFlags(cmd *kingpin.CmdClause, f *gateFlags) {
	cmd.Flag("query.url", "Thanos Query or Prometheus URL (the part before /api/v1).").Envar("UPGRADEGUARD_QUERY_URL").Required().StringVar(&f.url)
	cmd.Flag("query.kind", "thanos, prometheus, or auto (asks /api/v1/stores, which only Thanos answers).").Default("auto").EnumVar(&f.kind, "auto", "thanos", "prometheus")
	cmd.Flag("query.timeout", "Timeout of each query.").Default("20s").DurationVar(&f.queryTimeout)
	cmd.Flag("query.replica-label", "External label telling replicas apart, as Thanos Query's --query.replica-label (repeatable; default replica, prometheus_replica and ruler_replica).").StringsVar(&f.replicaLabels)
	cmd.Flag("policy", "Policy file (YAML, see docs/gate.md); safe defaults without.").StringVar(&f.policyFile)
	cmd.Flag("node", "The node about to be replaced: enables the drain check and the zone of the capacity check; its own ill health does not fail the nodes check.").StringVar(&f.node)
	cmd.Flag("baseline", "Alerts firing when the upgrade began (written by gate check --write-baseline): reported, not blocking, unless their severity changes; its time is the availability check's reference.").StringVar(&f.baselineFile)
	cmd.Flag("output", "table (check, status, value, why), wide (the table with each check's threshold and PromQL query) or json (the whole evaluation, queries included).").Short('o').Default("table").EnumVar(&f.output, "table", "wide", "json")
	cmd.Flag("consecutive", "Passing evaluations in a row needed for GO (default: the policy's, 2).").IntVar(&f.consecutive)
	cmd.Flag("interval", "Time between evaluations (default: the policy's, 30s).").DurationVar(&f.interval)
	cmd.Flag("http.config.file", "Prometheus-style HTTP client configuration (tls_config, authorization, basic_auth, oauth2, http_headers, proxy); the flags below add to it.").StringVar(&f.httpConfigFile)
	cmd.Flag("tls.ca-file", "CA certificate to verify the server.").StringVar(&f.caFile)
	cmd.Flag("tls.cert-file", "Client certificate.").StringVar(&f.certFile)
	cmd.Flag("tls.key-file", "Client key.").StringVar(&f.keyFile)
	cmd.Flag("tls.server-name", "Server name to verify.").StringVar(&f.serverName)
	cmd.Flag("tls.insecure-skip-verify", "Do not verify the server's certificate.").BoolVar(&f.insecure)
	cmd.Flag("bearer-token-file", "File holding a bearer token (read at every request).").StringVar(&f.bearerTokenFile)
	cmd.Flag("basic-auth.username", "Basic auth user.").StringVar(&f.basicUser)
	cmd.Flag("basic-auth.password-file", "File holding the basic auth password.").StringVar(&f.basicPassFile)
	cmd.Flag("header", `Extra request header "Name: value", e.g. "X-Scope-OrgID: team-a" (repeatable).`).StringsVar(&f.headers)
}

// addNodeGroupFlag adds --nodegroup to gate check and gate wait (roll has
// its own --nodegroup: the group it replaces).
func addNodeGroupFlag(cmd *kingpin.CmdClause, f *gateFlags) {
	cmd.Flag("nodegroup", "The node group about to be replaced (the nodegroup label of upgradeguard_node_info): every node of it must be drainable, at least in steps. Not with --node.").StringVar(&f.nodegroup)
}

// build turns the flags into a gate, its policy and the wait options.
// build loads the policy, applies adjust (the roll's own options) and
// the flags to it, and returns the gate.
func (f *gateFlags) build(logger *slog.Logger, adjust ...func(*gate.Policy)) (*gate.Gate, gate.Policy, error) {
	policy := gate.DefaultPolicy()
	if f.policyFile != "" {
		p, err := gate.LoadPolicy(f.policyFile)
		if err != nil {
			return nil, policy, usageErr("%v", err)
		}
		policy = p
	}
	for _, a := range adjust {
		a(&policy)
	}
	if f.consecutive < 0 {
		return nil, policy, usageErr("--consecutive %d: want at least 1", f.consecutive)
	}
	if f.consecutive > 0 {
		policy.Consecutive = f.consecutive
	}
	if f.interval < 0 {
		return nil, policy, usageErr("--interval %s: want a positive duration", f.interval)
	}
	if f.interval > 0 {
		policy.Interval = gate.Duration(f.interval)
	}
	if f.node != "" && f.nodegroup != "" {
		return nil, policy, usageErr("--node and --nodegroup: give one (a node, or the node group whose nodes are all about to be replaced)")
	}
	cfg := gate.Config{URL: f.url, Kind: f.kind, QueryTimeout: f.queryTimeout, ReplicaLabels: f.replicaLabels, NodeGroup: f.nodegroup}
	if f.queryTimeout <= 0 {
		return nil, policy, usageErr("--query.timeout %s: want a positive duration", f.queryTimeout)
	}
	if f.httpConfigFile != "" {
		hc, _, err := config.LoadHTTPConfigFile(f.httpConfigFile)
		if err != nil {
			return nil, policy, usageErr("--http.config.file: %v", err)
		}
		cfg.HTTP = *hc
	} else {
		cfg.HTTP = config.DefaultHTTPClientConfig
	}
	h := &cfg.HTTP
	if f.caFile != "" {
		h.TLSConfig.CAFile = f.caFile
	}
	if f.certFile != "" || f.keyFile != "" {
		h.TLSConfig.CertFile, h.TLSConfig.KeyFile = f.certFile, f.keyFile
	}
	if f.serverName != "" {
		h.TLSConfig.ServerName = f.serverName
	}
	if f.insecure {
		h.TLSConfig.InsecureSkipVerify = true
	}
	if f.bearerTokenFile != "" {
		h.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: f.bearerTokenFile}
	}
	if f.basicUser != "" || f.basicPassFile != "" {
		if f.basicUser == "" {
			return nil, policy, usageErr("--basic-auth.password-file needs --basic-auth.username")
		}
		h.BasicAuth = &config.BasicAuth{Username: f.basicUser, PasswordFile: f.basicPassFile}
	}
	for _, hv := range f.headers {
		name, value, ok := strings.Cut(hv, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, policy, usageErr("--header %q: want \"Name: value\"", hv)
		}
		if h.HTTPHeaders == nil {
			h.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{}}
		}
		hdr := h.HTTPHeaders.Headers[name]
		hdr.Values = append(hdr.Values, value)
		h.HTTPHeaders.Headers[name] = hdr
	}
	if f.baselineFile != "" {
		b, err := gate.LoadBaseline(f.baselineFile)
		if err != nil {
			return nil, policy, usageErr("%v", err)
		}
		cfg.Baseline = b
	}
	g, err := gate.New(cfg, policy, logger)
	if err != nil {
		return nil, policy, usageErr("%v", err)
	}
	return g, policy, nil
}

// report writes the evaluation and returns the command's error.
func (f *gateFlags) report(e gate.Evaluation, waitErr error) error {
	var err error
	switch f.output {
	case "json":
		err = gate.WriteJSON(gateStdout, e)
	case "wide":
		err = gate.WriteTable(gateStdout, e, gate.TableWide)
	default:
		err = gate.WriteTable(gateStdout, e, gate.TableDefault)
	}
	if err != nil {
		return err
	}
	switch {
	case e.Verdict == gate.GO && waitErr == nil:
		return nil
	case waitErr != nil && !errors.As(waitErr, new(*gate.TimeoutError)):
		return waitErr // interrupted
	case e.Unreachable:
		return &gateExit{code: exitUnreachable, msg: fmt.Sprintf("%s: the monitoring was unreachable: %s", e.Verdict, strings.Join(e.Reasons(), "; "))}
	}
	reasons := e.Reasons()
	if e.Passed() && e.Note != "" {
		reasons = []string{e.Note}
	}
	return &gateExit{code: exitNotGo, msg: fmt.Sprintf("%s: %s", e.Verdict, strings.Join(reasons, "; "))}
}

func progress(e gate.Evaluation) {
	line := fmt.Sprintf("gate: %s", e.Verdict)
	if e.Passed() {
		line += " " + e.Note
	} else {
		line += ": " + strings.Join(e.Reasons(), "; ")
	}
	fmt.Fprintln(gateStderr, line)
}

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) []subcommand {
		g := app.Command("gate", "Ask the monitoring whether replacing a node is safe now.")

		check := g.Command("check", "Evaluate the gate: GO (exit 0) only when every check passes on --consecutive evaluations in a row; otherwise WAIT (exit 1) at the first failing one.")
		var cf gateFlags
		addGateFlags(check, &cf)
		addNodeGroupFlag(check, &cf)
		var writeBaseline string
		check.Flag("write-baseline", "Instead of evaluating, write the alerts firing now to this file, for --baseline.").StringVar(&writeBaseline)

		wait := g.Command("wait", "Evaluate until GO (exit 0) or --timeout (STOP, exit 1; 3 when the monitoring was unreachable at the deadline).")
		var wf gateFlags
		addGateFlags(wait, &wf)
		addNodeGroupFlag(wait, &wf)
		var timeout time.Duration
		wait.Flag("timeout", "Give up (STOP) after this long; 0 waits forever.").Default("1h").DurationVar(&timeout)

		runCheck := func(ctx context.Context, logger *slog.Logger) error {
			gt, policy, err := cf.build(logger)
			if err != nil {
				return err
			}
			if writeBaseline != "" {
				b, err := gt.Snapshot(ctx)
				if err != nil {
					return &gateExit{code: exitUnreachable, msg: err.Error()}
				}
				if err := gate.WriteBaseline(writeBaseline, b); err != nil {
					return err
				}
				fmt.Fprintf(gateStderr, "gate: %d firing alerts written to %s\n", len(b.Alerts), writeBaseline)
				return nil
			}
			// Up to Consecutive evaluations; the first that fails ends it.
			var e gate.Evaluation
			for i := 1; ; i++ {
				e, err = gt.Evaluate(ctx, cf.node)
				if err != nil {
					return err
				}
				if !e.Passed() {
					e.Consecutive, e.Verdict = 0, gate.WAIT
					break
				}
				e.Consecutive = i
				if i >= policy.Consecutive {
					e.Verdict = gate.GO
					break
				}
				e.Verdict = gate.WAIT
				e.Note = fmt.Sprintf("passed %d of %d consecutive evaluations", i, policy.Consecutive)
				progress(e)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(policy.Interval)):
				}
			}
			return cf.report(e, nil)
		}
		runWait := func(ctx context.Context, logger *slog.Logger) error {
			if timeout < 0 {
				return usageErr("--timeout %s: want 0 or more", timeout)
			}
			gt, policy, err := wf.build(logger)
			if err != nil {
				return err
			}
			e, err := gate.Wait(ctx, gt, wf.node, gate.WaitOptions{
				Consecutive: policy.Consecutive, Interval: time.Duration(policy.Interval), Timeout: timeout,
				OnEvaluation: func(e gate.Evaluation) {
					if e.Verdict == gate.WAIT {
						progress(e)
					}
				},
			})
			return wf.report(e, err)
		}
		return []subcommand{{check, runCheck}, {wait, runWait}, addHoldCommand(g)}
	})
}
