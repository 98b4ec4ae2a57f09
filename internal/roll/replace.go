package roll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// replace takes one node from where it is to replaced.
func (r *roller) replace(ctx context.Context, p PlannedNode, nr NodeResult) (NodeResult, error) {
	began := r.cfg.Now()
	name := p.Name()
	n, err := r.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && p.State.Step.rank() >= StepTerminating.rank():
		n = p.Node // terminated and deleted: only the waits are left
	case err != nil:
		if ctx.Err() != nil {
			return nr, &InterruptedError{Node: name, Step: string(p.State.Step), Detail: "before touching the node"}
		}
		return nr, fmt.Errorf("reading node %s: %w", name, err)
	}
	st, err := readState(n)
	if err != nil {
		return nr, err
	}
	step := func(s Step, extra map[string]*string) error {
		bctx, cancel := background(ctx)
		defer cancel()
		updated, err := r.state.setStep(bctx, name, s, extra)
		if err != nil {
			return err
		}
		n = updated
		r.m.lastStep.WithLabelValues(name, string(s)).Set(float64(r.cfg.Now().Unix()))
		return nil
	}
	inst := p.Instance
	if inst.Group == "" {
		inst.Group = st.Group
	}
	d := &drainer{client: r.cfg.Client, o: r.cfg.Drain, now: r.cfg.Now,
		onEvicted: func(string) { r.m.evictions.WithLabelValues("evicted").Inc() },
		onRefused: func(string, string) { r.m.evictions.WithLabelValues("refused").Inc() },
		onGone: func(pod string, deleting time.Duration) {
			r.rep.linef(name, "pod %s counted as gone: evicted, its deletion deadline passed %s ago and the node's kubelet is unreachable", pod, seconds(deleting))
		},
	}

	// Before the cordon: would the Eviction API ever let every pod go?
	if st.Step.rank() < StepCordoned.rank() {
		pods, err := podsOn(ctx, r.cfg.Client, name)
		if err != nil {
			return nr, err
		}
		dp := planDrain(pods, r.cfg.Drain)
		if len(dp.Refused) > 0 {
			derr := &DrainError{Node: name, Refused: dp.Refused}
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v; node left as it was", derr)
			return nr, derr
		}
		refused, err := d.preflight(ctx, dp.Evict)
		if err != nil {
			if ctx.Err() != nil {
				return nr, &InterruptedError{Node: name, Step: string(StepPending), Detail: "before touching the node"}
			}
			return nr, err
		}
		if len(refused) > 0 {
			perr := &PreflightError{Node: name, Pods: refused}
			r.rep.linef(name, "%v", perr)
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v", perr)
			return nr, perr
		}
	}

	// Cordon.
	if st.Step.rank() < StepCordoned.rank() {
		t := r.cfg.Now()
		bctx, cancel := background(ctx)
		updated, err := r.state.cordon(bctx, n)
		cancel()
		if err != nil {
			return nr, err
		}
		n = updated
		nr.Cordon = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("cordon").Observe(nr.Cordon.Seconds())
		r.rep.linef(name, "cordoned")
		r.rep.event(ctx, n, false, ReasonCordoned, "cordoned by roll %s", r.plan.Roll)
		st.Step = StepCordoned
	}

	// Surge: a new node before the old one is drained. The surge node is
	// the instance the group launched for it, known by its id.
	surgeNode := st.SurgeNode
	if r.cfg.Surge && st.Step.rank() < StepDraining.rank() && surgeNode == "" {
		t := r.cfg.Now()
		var before map[string]bool
		requested, failSince := st.SurgeRequested, r.cfg.Now()
		if requested.IsZero() {
			if before, err = r.members(ctx, inst.Group); err != nil {
				return nr, r.abortDrain(ctx, n, err)
			}
			requested = r.cfg.Now()
			failSince = requested
			if err := step(StepSurging, nil); err != nil {
				return nr, err
			}
			bctx, cancel := background(ctx)
			desired, err := r.cfg.Provider.Surge(bctx, inst.Group)
			cancel()
			if err != nil {
				r.rep.event(ctx, n, true, ReasonSurge, "surge failed: %v", err)
				return nr, r.abortDrain(ctx, n, err)
			}
			if err := step(StepSurging, map[string]*string{AnnotationSurgeRequested: strp(requested.UTC().Format(time.RFC3339))}); err != nil {
				return nr, err
			}
			r.rep.linef(name, "asked group %s for one more instance (desired capacity %d)", inst.Group, desired)
			r.rep.event(ctx, n, false, ReasonSurge, "raised the desired capacity of %s by one, to %d", inst.Group, desired)
		} else {
			r.rep.linef(name, "waiting for the instance group %s launches for the surge asked at %s", inst.Group, requested.Format(time.RFC3339))
		}
		var surgeInst string
		surgeInst, surgeNode, err = r.waitLaunch(ctx, name, inst.Group, requested, failSince, before)
		if err != nil {
			if ctx.Err() != nil {
				return nr, &InterruptedError{Node: name, Step: string(StepSurging), Detail: "waiting for the surge node; the node stays cordoned and the group keeps its extra instance"}
			}
			var le *LaunchError
			if errors.As(err, &le) {
				le.Surge = true
				r.rep.event(ctx, n, true, ReasonStopped, "roll stopped: %v", le)
				return nr, r.abortDrain(ctx, n, le)
			}
			return nr, r.abortDrain(ctx, n, fmt.Errorf("surge for node %s: %w", name, err))
		}
		if err := step(StepSurging, map[string]*string{AnnotationSurge: strp(surgeNode), AnnotationSurgeInstance: strp(surgeInst)}); err != nil {
			return nr, err
		}
		nr.Surge = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("surge").Observe(nr.Surge.Seconds())
		r.rep.linef(name, "surge node %s (instance %s) Ready after %s", surgeNode, surgeInst, seconds(nr.Surge))
		r.rep.event(ctx, n, false, ReasonSurge, "surge node %s (instance %s) Ready", surgeNode, surgeInst)
	}

	loads := st.Workloads
	var replacement string
	if st.Step.rank() < StepTerminating.rank() {
		// Drain.
		t := r.cfg.Now()
		pods, err := podsOn(ctx, r.cfg.Client, name)
		if err != nil {
			return nr, r.abortDrain(ctx, n, err)
		}
		dp := planDrain(pods, r.cfg.Drain)
		if len(dp.Refused) > 0 {
			derr := &DrainError{Node: name, Refused: dp.Refused}
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v", derr)
			return nr, r.abortDrain(ctx, n, derr)
		}
		extra := map[string]*string{}
		if !st.HasLoads {
			if loads, err = snapshotWorkloads(ctx, r.cfg.Client, dp.Evict); err != nil {
				return nr, r.abortDrain(ctx, n, err)
			}
			enc, err := encodeWorkloads(loads)
			if err != nil {
				return nr, err
			}
			extra[AnnotationWorkloads] = strp(enc)
		}
		if err := step(StepDraining, extra); err != nil {
			return nr, r.abortDrain(ctx, n, err)
		}
		r.rep.linef(name, "draining: %d pod(s) to evict, %d skipped (DaemonSet, mirror); workloads: %s", len(dp.Evict), len(dp.Skipped), describeLoads(loads))
		r.rep.event(ctx, n, false, ReasonDraining, "draining %d pod(s) through the Eviction API", len(dp.Evict))
		evicted, err := d.drain(ctx, name)
		nr.Evicted = evicted
		if err != nil {
			if ctx.Err() != nil {
				if aerr := r.abortDrain(ctx, n, nil); aerr != nil {
					return nr, aerr
				}
				r.rep.event(ctx, n, true, ReasonInterrupted, "roll interrupted during the drain; node uncordoned (if the roll cordoned it), nothing terminated")
				return nr, &InterruptedError{Node: name, Step: string(StepDraining), Detail: fmt.Sprintf("drain stopped after %d eviction(s); the node was uncordoned and not terminated", evicted)}
			}
			r.rep.event(ctx, n, true, ReasonDrainFailed, "%v; node not terminated", err)
			return nr, r.abortDrain(ctx, n, err)
		}
		nr.Drain = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("drain").Observe(nr.Drain.Seconds())
		if err := step(StepDrained, nil); err != nil {
			return nr, err
		}
		r.rep.linef(name, "drained: %d pod(s) evicted in %s", evicted, seconds(nr.Drain))
		r.rep.event(ctx, n, false, ReasonDrained, "drained: %d pod(s) evicted in %s", evicted, seconds(nr.Drain))

		// Out of the load balancers before the instance ends
		// (loadbalancers.go); a wait that does not finish puts the node back.
		if nr.Deregister, nr.LoadBalancers, err = r.awaitDeregistration(ctx, n, inst); err != nil {
			if ctx.Err() != nil {
				if aerr := r.abortDrain(ctx, n, nil); aerr != nil {
					return nr, aerr
				}
				r.rep.event(ctx, n, true, ReasonInterrupted, "roll interrupted waiting for the load balancers; node uncordoned and back in them (if the roll took it out), nothing terminated")
				return nr, &InterruptedError{Node: name, Step: string(StepDrained), Detail: "waiting for the load balancers to let the instance go; the node was uncordoned, its exclusion label removed, and not terminated"}
			}
			r.rep.event(ctx, n, true, ReasonDeregistered, "%v", err)
			return nr, r.abortDrain(ctx, n, err)
		}

		// Terminate. From here on the node is gone for good: the step is
		// recorded first, so a crash in between re-asks on resume.
		t = r.cfg.Now()
		var before map[string]bool
		if !r.cfg.Surge {
			if before, err = r.members(ctx, inst.Group); err != nil {
				return nr, err
			}
		}
		since := r.cfg.Now()
		if err := step(StepTerminating, nil); err != nil {
			return nr, err
		}
		if err := r.terminate(ctx, n, inst); err != nil {
			return nr, err
		}
		nr.Terminate = r.cfg.Now().Sub(t)
		r.m.steps.WithLabelValues("terminate").Observe(nr.Terminate.Seconds())
		if !r.cfg.Surge {
			t = r.cfg.Now()
			if _, replacement, err = r.waitLaunch(ctx, name, inst.Group, since, since, before); err != nil {
				return nr, r.replaceFailed(ctx, n, inst, err)
			}
			nr.Replace = r.cfg.Now().Sub(t)
		}
	} else {
		// Resumed after the termination was asked for.
		if p.HasInstance && p.Instance.InService {
			if nr.Deregister, nr.LoadBalancers, err = r.awaitDeregistration(ctx, n, inst); err != nil {
				if ctx.Err() != nil {
					return nr, &InterruptedError{Node: name, Step: string(StepTerminating), Detail: "waiting for the load balancers to let the instance go; nothing terminated"}
				}
				return nr, err
			}
			if err := r.terminate(ctx, n, inst); err != nil {
				return nr, err
			}
		}
		if !r.cfg.Surge {
			t := r.cfg.Now()
			if _, replacement, err = r.waitLaunch(ctx, name, inst.Group, st.StepTime, r.cfg.Now(), nil); err != nil {
				return nr, r.replaceFailed(ctx, n, inst, err)
			}
			nr.Replace = r.cfg.Now().Sub(t)
		}
	}
	if r.cfg.Surge {
		replacement = surgeNode
	}
	nr.Replacement = replacement
	nr.LeftGroup = r.takeLeftGroup(name)

	// Workloads Running again; meanwhile a canary node's replacement is
	// judged (canary_judge.go).
	t := r.cfg.Now()
	if err := r.waitWorkloads(ctx, name, loads, r.canaryWaitJudge(ctx, p, replacement, loads)); err != nil {
		return nr, r.replaceFailed(ctx, n, inst, err)
	}
	nr.Replace += r.cfg.Now().Sub(t)
	r.m.steps.WithLabelValues("replace").Observe(nr.Replace.Seconds())
	nr.Total = r.cfg.Now().Sub(began)
	// The node object may be gone already; the state only matters while it
	// is not.
	if err := step(StepReplaced, nil); err != nil && !apierrors.IsNotFound(err) {
		r.cfg.Logger.Warn("could not record the replaced step", "node", name, "err", err)
	}
	msg := fmt.Sprintf("replaced by %s, %d workload(s) Running again; took %s: gate %s (%d evaluations), drain %s (%d pods), terminate %s, replacement and workloads %s",
		dash(replacement), len(loads), seconds(nr.Total+nr.Gate), seconds(nr.Gate), nr.GateEvaluations, seconds(nr.Drain), nr.Evicted, seconds(nr.Terminate), seconds(nr.Replace))
	if r.cfg.Surge {
		msg += fmt.Sprintf(", surge %s", seconds(nr.Surge))
	}
	r.rep.linef(name, "%s", msg)
	r.rep.event(ctx, n, false, ReasonReplaced, "%s", msg)
	return nr, nil
}

// terminate has the provider end the node's instance (after its drain).
func (r *roller) terminate(ctx context.Context, n *corev1.Node, inst Instance) error {
	bctx, cancel := background(ctx)
	defer cancel()
	if err := r.cfg.Provider.Terminate(bctx, inst, r.cfg.Surge); err != nil {
		r.rep.event(ctx, n, true, ReasonTerminating, "terminating instance %s failed: %v", inst.ID, err)
		return fmt.Errorf("node %s (drained, still cordoned): %w", n.Name, err)
	}
	how := "without decrementing the capacity: the group launches a replacement"
	if r.cfg.Surge {
		how = "decrementing the capacity (the surge node replaces it)"
	}
	r.rep.linef(n.Name, "terminating instance %s in group %s %s", inst.ID, inst.Group, how)
	r.rep.event(ctx, n, false, ReasonTerminating, "terminating instance %s in group %s %s", inst.ID, inst.Group, how)
	return nil
}

// abortDrain uncordons a node whose drain did not finish (when the roll
// cordoned it) and puts it back to pending; nothing was terminated.
func (r *roller) abortDrain(ctx context.Context, n *corev1.Node, cause error) error {
	bctx, cancel := background(ctx)
	defer cancel()
	cur, err := r.cfg.Client.CoreV1().Nodes().Get(bctx, n.Name, metav1.GetOptions{})
	if err == nil {
		err = r.state.release(bctx, cur)
	}
	if err != nil {
		err = fmt.Errorf("could not uncordon node %s after its drain stopped (uncordon it by hand): %w", n.Name, err)
		if cause != nil {
			return errors.Join(cause, err)
		}
		return err
	}
	if cause != nil {
		r.rep.linef(n.Name, "drain stopped, node uncordoned and not terminated: %v", cause)
	}
	return cause
}

func (r *roller) replaceFailed(ctx context.Context, n *corev1.Node, inst Instance, err error) error {
	var le *LaunchError
	if errors.As(err, &le) {
		r.rep.event(ctx, n, true, ReasonStopped, "roll stopped: %v", le)
		return le
	}
	var ce *CanaryError
	if errors.As(err, &ce) {
		r.rep.linef(n.Name, "%v", ce)
		r.rep.event(ctx, n, true, ReasonStopped, "%v", ce)
		return ce
	}
	if ctx.Err() != nil {
		return &InterruptedError{Node: n.Name, Step: string(StepTerminating),
			Detail: fmt.Sprintf("instance %s was terminated; waiting for its replacement and workloads", inst.ID)}
	}
	r.rep.event(ctx, n, true, ReasonStopped, "roll stopped: %v", err)
	return fmt.Errorf("node %s (instance %s terminated): %w", n.Name, inst.ID, err)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitWorkloads waits until the workloads evicted from the node have as many
// ready pods as before, none on the node. With a judge (a canary node's
// replacement), what the judge finds on the new node ends the wait at once
// with a *CanaryError.
func (r *roller) waitWorkloads(parent context.Context, old string, loads []Workload, judge *canaryJudge) error {
	if len(loads) == 0 && judge == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(parent, r.cfg.NodeTimeout)
	defer cancel()
	var missing []string
	for {
		if judge != nil {
			if v, err := judge.judge(ctx); err == nil && len(v.Findings) > 0 {
				return &CanaryError{Node: old, Findings: v.Findings}
			}
			if len(loads) == 0 {
				return nil
			}
		}
		m, err := workloadsBack(ctx, r.cfg.Client, loads, old)
		if err == nil {
			if len(m) == 0 {
				return nil
			}
			missing = m
		}
		select {
		case <-ctx.Done():
			if parent.Err() == nil {
				return fmt.Errorf("workloads not Running again within %s: %s", r.cfg.NodeTimeout, strings.Join(missing, "; "))
			}
			return ctx.Err()
		case <-time.After(r.cfg.Poll):
		}
	}
}
