// Package hold is `upgradeguard gate hold`: a controller that evaluates the
// gate every interval and applies its verdict to the node replacements that
// do not ask a gate themselves. While an evaluation does not pass (a check
// fails, or the monitoring cannot answer: unknown is never GO) it pauses
// each target: Karpenter NodePools get a disruption budget of nodes "0", the
// /gate readiness endpoint answers 503 (which holds kops' cluster
// validation through a system-cluster-critical pod), the nodes of node
// groups being upgraded get cluster-autoscaler's scale-down-disabled
// annotation, and on STOP the groups' Auto Scaling instance refreshes are
// cancelled. After `consecutive` passing evaluations in a row (GO) it
// restores each target as it was. Everything it needs to restore is kept on
// the targets themselves (annotations and labels), so a controller that
// dies leaves its pauses in place and the next one takes over.
package hold

import (
	"context"
	"strings"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// Action is what a decision asks of the targets.
type Action int

// The actions: Hold pauses every target, Release restores every target,
// Keep leaves every target as it is (the evaluation passed, but not yet
// `consecutive` times in a row).
const (
	Keep Action = iota
	Hold
	Release
)

func (a Action) String() string {
	switch a {
	case Hold:
		return "hold"
	case Release:
		return "release"
	}
	return "keep"
}

// Decision is the controller's answer after one evaluation.
type Decision struct {
	Action Action
	// Verdict is GO (Release), WAIT, or STOP: no GO for StopAfter.
	Verdict    gate.Verdict
	Evaluation gate.Evaluation
}

// Reasons says why, in one line: the gate's failing and unknown checks, or
// the note of a passing evaluation that is not GO yet.
func (d Decision) Reasons() string {
	if d.Evaluation.Passed() {
		if d.Evaluation.Note != "" {
			return d.Evaluation.Note
		}
		return "every check passed"
	}
	return strings.Join(d.Evaluation.Reasons(), "; ")
}

// Target is one kind of rollout the hold pauses and restores.
type Target interface {
	// Kind names the target kind in logs ("karpenter", "autoscaler",
	// "instance-refresh").
	Kind() string
	// Apply makes the targets of this kind follow d. It is called after
	// every evaluation while this replica leads, so it must be idempotent;
	// it returns an error only for what it could not do (it is retried at
	// the next evaluation).
	Apply(ctx context.Context, d Decision, r *Reporter) error
}
