package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// generatedRules is the rule file `upgradeguard generate` writes (the same
// groups as the PrometheusRule of deploy/generated).
const generatedRules = "deploy/generated/prometheus-rules.yaml"

// faultRule is the demo's own alert, which the demo fires mid-roll.
const faultRule = `groups:
- name: demo
  rules:
  - alert: DemoPaymentsErrorRate
    expr: demo_fault > 0
    labels:
      severity: critical
    annotations:
      summary: The payments service answers with errors (a fault the demo injects).
`

// demoPolicy is the gate's policy in the demo: the defaults, evaluated
// every 3 seconds instead of 30 so the demo moves at a watchable pace, and
// accepting emptyDir pods as the roll's --force-local-storage does.
const demoPolicy = `# upgradeguard gate policy of the demo: the safe defaults (see docs/gate.md),
# evaluated more often.
consecutive: 2
interval: 3s
drain:
  allow_local_storage_pods: true   # batch/scratch keeps only scratch data
`

type demo struct {
	tb         *testbed.Testbed
	bin        string
	awsURL     string
	awsEnv     []string
	fault      *atomic.Int64
	policyFile string
}

func (d *demo) policy() error {
	d.policyFile = filepath.Join(d.tb.Dir, "gate-policy.yaml")
	return os.WriteFile(d.policyFile, []byte(demoPolicy), 0o644)
}

func (d *demo) gateArgs(node string) []string {
	args := []string{"--query.url", d.tb.ThanosQueryURL, "--policy", d.policyFile}
	if node != "" {
		args = append(args, "--node", node)
	}
	return args
}

// gate runs `upgradeguard gate <sub>` and prints what it says.
func (d *demo) gate(ctx context.Context, sub, node string, extra ...string) error {
	shown := append([]string{"gate", sub, "--query.url", d.tb.ThanosQueryURL}, extra...)
	if node != "" {
		shown = append(shown, "--node", node)
	}
	fmt.Printf("$ upgradeguard %s\n", strings.Join(shown, " "))
	cmd := exec.CommandContext(ctx, d.bin, append(append([]string{"gate", sub, "--log.level", "error"}, extra...), d.gateArgs(node)...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		fmt.Print("(exit 0: GO)\n\n")
	case errors.As(err, &exit):
		fmt.Printf("(exit %d: not GO)\n\n", exit.ExitCode())
	default:
		return err
	}
	return nil
}

// gateVerdicts asks the gate about a node of nodes-green (GO, once the
// monitoring has the data), about the node under the blocking PDB (WAIT),
// and about the cluster as a whole (WAIT: eu-west-1c is nearly out of
// addresses); then adds a subnet to eu-west-1c, as an operator would, and
// waits for the gate's GO.
func (d *demo) gateVerdicts(ctx context.Context, acct *awsfake.Account, pinned string) error {
	green, err := d.groupNodes(ctx, "nodes-green")
	if err != nil {
		return err
	}
	fmt.Println("Is it safe to replace a node of nodes-green? (gate wait: until 2 evaluations in a row pass)")
	if err := d.gate(ctx, "wait", green[0], "--timeout", "3m"); err != nil {
		return err
	}
	fmt.Println("And the node that runs payments/ledger, whose PDB allows no disruption?")
	if err := d.gate(ctx, "check", pinned, "--consecutive", "1"); err != nil {
		return err
	}
	fmt.Println("And any node, anywhere (no --node: the capacity check covers every zone)?")
	if err := d.gate(ctx, "check", "", "--consecutive", "1"); err != nil {
		return err
	}
	fmt.Println("The operator adds a subnet in eu-west-1c (10.1.3.0/24, tagged for the cluster) and waits for the gate:")
	if _, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.1.3.0/24", AZ: "eu-west-1c", Tags: map[string]string{"kubernetes.io/cluster/demo": "owned"}}); err != nil {
		return err
	}
	return d.gate(ctx, "wait", "", "--timeout", "3m")
}

// groupNodes lists the nodes of a node group, sorted by name.
func (d *demo) groupNodes(ctx context.Context, group string) ([]string, error) {
	l, err := d.tb.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: testbed.DefaultNodeGroupLabel + "=" + group})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node group %s has no nodes", group)
	}
	return out, nil
}

// roll replaces the nodes of nodes-green behind the gate, fires the demo's
// fault alert once the first node is replaced, and resolves it once the
// roll has paused for a while.
func (d *demo) roll(ctx context.Context) error {
	args := append([]string{"roll", "--nodegroup", "nodes-green",
		"--kubeconfig", d.tb.Kubeconfig, "--aws.region", region, "--aws.endpoint-url", d.awsURL, "--aws.cluster-name", "demo",
		"--force-local-storage", "--gate-timeout", "10m", "--log.level", "warn"}, d.gateArgs("")...)
	fmt.Println("Rolling node group nodes-green (shop/web and shop/api run there, under PDBs), gated on Thanos;")
	fmt.Println("--force-local-storage because batch/scratch keeps only scratch data in its emptyDir. After the")
	fmt.Println("first node the demo fires the critical alert DemoPaymentsErrorRate: watch the roll pause, then")
	fmt.Println("resume when it resolves.")
	fmt.Printf("$ upgradeguard roll --nodegroup nodes-green --aws.cluster-name demo --query.url %s --force-local-storage\n", d.tb.ThanosQueryURL)
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), d.awsEnv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	d.follow(ctx, out)
	return cmd.Wait()
}

// follow echoes the roll's progress and drives the fault: on after the
// first node's instance is terminated, off 20 seconds after the roll
// reports the pause; meanwhile it shows NodePool demo-workers as gate hold
// paused it, and after the fault as the hold restored it.
func (d *demo) follow(ctx context.Context, out io.Reader) {
	sc := bufio.NewScanner(out)
	fired, resolved := false, false
	for sc.Scan() {
		line := sc.Text()
		fmt.Println("  " + line)
		switch {
		case !fired && strings.Contains(line, "terminating instance"):
			fired = true
			d.fault.Store(1)
			fmt.Println("  >>> demo: injecting a fault: DemoPaymentsErrorRate (critical) starts firing")
		case fired && !resolved && strings.Contains(line, "roll paused"):
			resolved = true
			go func() {
				fix := time.After(20 * time.Second)
				d.showHeld(ctx)
				select {
				case <-fix:
				case <-ctx.Done():
					return
				}
				d.fault.Store(0)
				fmt.Println("  >>> demo: the fault is fixed: DemoPaymentsErrorRate resolves")
				d.showRestored(ctx)
			}()
		}
	}
}
