package roll

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TakeOutOptions configure TakeOut.
type TakeOutOptions struct {
	Client kubernetes.Interface
	// Provider reads the load balancers that still route to the instance
	// when it is a LoadBalancerReader (roll.AWS with its ELB clients); nil
	// or another provider: the stated Deregistration.Wait.
	Provider       Provider
	Drain          DrainOptions
	Deregistration DeregistrationOptions
	// Out gets the progress lines (nil: none); Logger the log records and
	// Events' messages (nil: none).
	Out    io.Writer
	Logger *slog.Logger
	Now    func() time.Time
}

// MaxDuration bounds how long TakeOut may last: the drain's timeout plus
// the longest wait for the load balancers (the timeout of the reads, or the
// stated wait when they cannot be read), defaults applied. The hold starts
// a take-out at least this long before the hook's global timeout.
func (o TakeOutOptions) MaxDuration() time.Duration {
	o.Drain.defaults()
	o.Deregistration.defaults()
	return o.Drain.Timeout + max(o.Deregistration.Timeout, o.Deregistration.Wait)
}

// TakeOut does to a node what a roll does before it terminates the node's
// instance, with the roll's own code: it cordons the node and labels it
// node.kubernetes.io/exclude-from-external-load-balancers (recording both
// in the roll's cordon annotations, but joining no roll: `roll --reset`
// does not see the node, and a later roll does not resume it), drains it
// through the Eviction API (DrainOptions), and waits until no load
// balancer routes to inst (DeregistrationOptions). It is what `gate hold`
// calls for an instance held at a termination lifecycle hook. A node that
// is gone is nothing to take out. On an error the node stays cordoned and
// excluded: its instance is terminating anyway.
func TakeOut(ctx context.Context, o TakeOutOptions, node string, inst Instance) error {
	o.Drain.defaults()
	o.Deregistration.defaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &roller{
		cfg:   Config{Client: o.Client, Provider: o.Provider, Drain: o.Drain, Deregistration: o.Deregistration, Now: o.Now},
		state: stateStore{client: o.Client, now: o.Now},
		rep:   &reporter{out: o.Out, client: o.Client, logger: o.Logger, now: o.Now, start: o.Now()},
	}
	n, err := o.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading node %s: %w", node, err)
	}
	bctx, cancel := background(ctx)
	n, err = r.state.cordon(bctx, n)
	cancel()
	if err != nil {
		return err
	}
	r.rep.linef(node, "cordoned and labelled %s (instance %s held at a termination lifecycle hook)", LabelExcludeFromLoadBalancers, inst.ID)
	d := &drainer{client: o.Client, o: o.Drain, now: o.Now}
	evicted, err := d.drain(ctx, node)
	if err != nil {
		r.rep.event(ctx, n, true, ReasonDrainFailed, "drain of the node of instance %s held at a termination lifecycle hook: %v", inst.ID, err)
		return err
	}
	r.rep.linef(node, "drained: %d pods evicted", evicted)
	inst.InService = true // still running: it waits at the hook
	_, _, err = r.awaitDeregistration(ctx, n, inst)
	return err
}
