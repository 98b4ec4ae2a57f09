package roll

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"k8s.io/client-go/kubernetes"
)

// Config configures a roll.
type Config struct {
	Client   kubernetes.Interface
	Provider Provider
	// Gate is asked before each node (with the node, so its drain check
	// applies) and once more after the last one (without a node).
	Gate gate.Evaluator
	// GateWait are the options of each gate wait: consecutive passing
	// evaluations, their interval, and the timeout after which the roll
	// stops (0: wait as long as it takes). OnEvaluation is the roll's.
	GateWait  gate.WaitOptions
	Selection Selection
	Drain     DrainOptions
	// Deregistration bounds the wait, before each termination, for the
	// load balancers to let the node's instance go (loadbalancers.go).
	Deregistration DeregistrationOptions
	// MaxUnavailable is how many nodes may be cordoned, drained or
	// replaced at once (default 1).
	MaxUnavailable int
	// Surge raises the group's desired capacity by one and waits for the
	// new node before draining each node, then terminates the old instance
	// decrementing the capacity; without it the instance is terminated
	// after the drain and the group launches its replacement.
	Surge bool
	// NodeTimeout bounds the wait for a replacement (or surge) node to be
	// Ready and for the evicted workloads to be Running again (default 20m).
	// A launch that fails ends it at once (*LaunchError).
	NodeTimeout time.Duration
	// Canary replaces this many nodes first, then holds for CanarySoak while
	// the gate keeps evaluating the cluster; an evaluation that does not
	// pass during the soak stops the roll (*CanaryError). 0: no canary.
	Canary     int
	CanarySoak time.Duration
	// Poll is how often nodes and pods are listed while waiting (default 2s).
	Poll time.Duration
	// DryRun prints the plan and what the drain would do, and changes
	// nothing.
	DryRun bool
	// Reset forgets a roll in progress on the selected nodes: it removes the
	// roll's annotations and uncordons the nodes the roll cordoned and did
	// not terminate, then returns.
	Reset bool
	// Out receives the progress lines; TTY adds a progress bar.
	Out io.Writer
	TTY bool
	// Downtime, when set, samples the Services' ready endpoints and the
	// probes while the roll runs (downtime.go): Result.Downtime.
	Downtime *DowntimeOptions
	// Registerer, when set, gets the roll's progress metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

func (c *Config) defaults() error {
	if c.Client == nil {
		return errors.New("roll: no Kubernetes client")
	}
	if c.Provider == nil {
		return errors.New("roll: no provider")
	}
	if c.Gate == nil && !c.DryRun {
		return errors.New("roll: no gate")
	}
	if err := c.Selection.validate(); err != nil {
		return err
	}
	if c.MaxUnavailable <= 0 {
		c.MaxUnavailable = 1
	}
	if c.Canary < 0 || c.CanarySoak < 0 || c.CanarySoak > 0 && c.Canary == 0 {
		return fmt.Errorf("roll: canary %d with soak %s: want a soak only with canary nodes, neither negative", c.Canary, c.CanarySoak)
	}
	if c.NodeTimeout <= 0 {
		c.NodeTimeout = 20 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = 2 * time.Second
	}
	c.Drain.defaults()
	c.Deregistration.defaults()
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// NodeResult is how the replacement of one node went.
type NodeResult struct {
	Node, Replacement string
	Evicted           int
	// GateEvaluations made before the node, and the time they took
	// (waiting included): the gate's overhead for this node.
	GateEvaluations int
	Gate            time.Duration
	// The other steps' durations; Total is from the gate's GO to the
	// workloads being back.
	Cordon, Surge, Drain, Terminate, Replace, Total time.Duration
	// LeftGroup are the instances claimed as the node's new instance that
	// left the group before their node was Ready (Auto Scaling replaced
	// them), in order: the roll followed the group's next launch.
	LeftGroup []string
	// Deregister is the wait, before the termination, until no load
	// balancer routed to the node's instance; LoadBalancers those seen to
	// let it go (target group ARNs, classic load balancer names).
	Deregister    time.Duration
	LoadBalancers []string
}

// Result is what a roll did.
type Result struct {
	Plan  *Plan
	Nodes []NodeResult
	// FinalGate is the gate's last evaluation, after the last node.
	FinalGate gate.Evaluation
	// Downtime is the downtime report (with Config.Downtime).
	Downtime *DowntimeReport
}

// StoppedError ends a roll whose gate did not say GO within the timeout.
type StoppedError struct {
	Node string // "" for the check after the last node
	Last gate.Evaluation
	Err  error
}

func (e *StoppedError) Error() string {
	where := "before node " + e.Node
	if e.Node == "" {
		where = "after the last node"
	}
	return fmt.Sprintf("roll stopped %s: %v", where, e.Err)
}

func (e *StoppedError) Unwrap() error { return e.Err }

// ExitCode makes a stopped roll exit with 3.
func (e *StoppedError) ExitCode() int { return 3 }

// InterruptedError ends a roll that was interrupted (its context ended).
type InterruptedError struct {
	Node, Step string
	// Detail says what was left in which state.
	Detail string
}

func (e *InterruptedError) Error() string {
	if e.Node == "" {
		return "roll interrupted " + e.Detail + "; run it again to resume"
	}
	return fmt.Sprintf("roll interrupted at node %s (%s): %s; run it again to resume", e.Node, e.Step, e.Detail)
}

// ExitCode is 130, as for a shell's SIGINT.
func (e *InterruptedError) ExitCode() int { return 130 }
