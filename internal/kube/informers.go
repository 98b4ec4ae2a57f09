// Package kube holds the exporter's Kubernetes access: the client configuration,
// and the shared informers every collector reads, with their objects stripped
// to the fields the metrics use and their health tracked so that a collector
// can tell a scrape of stale data from a scrape of fresh data.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// NodeLeaseNamespace is where kubelets renew their heartbeat Leases.
const NodeLeaseNamespace = "kube-node-lease"

// PodNodeIndex indexes pods by spec.nodeName.
const PodNodeIndex = "node"

// Options say what the informers keep of each object.
type Options struct {
	// NodeLabels are node labels the node transform keeps besides
	// WellKnownNodeLabels (e.g. a custom node group label); all others are
	// dropped.
	NodeLabels []string
	// ResyncPeriod of the informers; 0 disables resyncs.
	ResyncPeriod time.Duration
	// Shard restricts the node, pod and node Lease informers to one shard's
	// nodes, their pods and Leases; the zero Shard keeps every one.
	Shard Shard
}

// Informers creates one shared informer per resource on first use, so that
// collectors reading the same resource share its watch and its cache.
type Informers struct {
	client kubernetes.Interface
	opts   Options
	logger *slog.Logger

	mu        sync.Mutex
	informers map[string]*Informer
	order     []string
	started   bool
}

// NewInformers returns an empty set of informers on client.
func NewInformers(client kubernetes.Interface, opts Options, logger *slog.Logger) *Informers {
	return &Informers{client: client, opts: opts, logger: logger, informers: map[string]*Informer{}}
}

// Informer is a shared informer with a record of whether its last list or
// watch succeeded.
type Informer struct {
	cache.SharedIndexInformer
	name string

	mu       sync.Mutex
	lastErr  error
	errSince time.Time
	handlers []cache.ResourceEventHandlerRegistration
}

// AddEventHandler registers handler as the shared informer does, and keeps
// its registration so that HasSynced waits for the handler too.
func (i *Informer) AddEventHandler(handler cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	reg, err := i.SharedIndexInformer.AddEventHandler(handler)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	i.handlers = append(i.handlers, reg)
	i.mu.Unlock()
	return reg, nil
}

// RemoveEventHandler removes a handler as the shared informer does, and
// forgets its registration, so that HasSynced no longer waits for it.
func (i *Informer) RemoveEventHandler(reg cache.ResourceEventHandlerRegistration) error {
	if err := i.SharedIndexInformer.RemoveEventHandler(reg); err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.handlers = slices.DeleteFunc(i.handlers, func(h cache.ResourceEventHandlerRegistration) bool { return h == reg })
	return nil
}

// AddEventHandlerWithResyncPeriod is not supported: the informers never
// resync, and a handler added through it would escape HasSynced. It panics.
func (i *Informer) AddEventHandlerWithResyncPeriod(cache.ResourceEventHandler, time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	panic("kube.Informer: use AddEventHandler")
}

// AddEventHandlerWithOptions is not supported, for the same reason. It panics.
func (i *Informer) AddEventHandlerWithOptions(cache.ResourceEventHandler, cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	panic("kube.Informer: use AddEventHandler")
}

// HasSynced reports whether the informer has completed its initial list and
// every handler registered through AddEventHandler has been delivered all of
// it: a collector that renders its series in its handlers (metricstore) has
// then rendered every object of the list, so a scrape after the exporter is
// ready is never a half one.
func (i *Informer) HasSynced() bool {
	if !i.SharedIndexInformer.HasSynced() {
		return false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, h := range i.handlers {
		if !h.HasSynced() {
			return false
		}
	}
	return true
}

// Name is the resource the informer watches, as used in logs and errors.
func (i *Informer) Name() string { return i.name }

// Healthy returns nil when the informer has synced and its last list or watch
// succeeded; otherwise an error saying why its cache may be stale.
func (i *Informer) Healthy() error {
	if !i.HasSynced() {
		return fmt.Errorf("%s informer has not synced yet", i.name)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.lastErr != nil {
		return fmt.Errorf("%s informer failing since %s, serving its last state: %w",
			i.name, i.errSince.UTC().Format(time.RFC3339), i.lastErr)
	}
	return nil
}

func (i *Informer) setErr(err error) (changed bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err == nil {
		changed = i.lastErr != nil
		i.lastErr = nil
		return changed
	}
	if i.lastErr == nil {
		i.errSince = time.Now()
		changed = true
	}
	i.lastErr = err
	return changed
}

// record notes the outcome of a list or watch call, logging changes of state.
func (i *Informer) record(err error, logger *slog.Logger) {
	switch {
	case err == nil:
		if i.setErr(nil) {
			logger.Info("informer recovered")
		}
	case benignWatchEnd(err) || errors.Is(err, context.Canceled):
	default:
		if i.setErr(err) {
			logger.Error("list or watch failed; serving the last known state until it recovers", "err", err)
		} else {
			logger.Debug("list or watch still failing", "err", err)
		}
	}
}

// benignWatchEnd tells the reflector's routine endings of a watch (server
// timeouts, expired resource versions) from failures.
func benignWatchEnd(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

func (f *Informers) get(name string, example runtime.Object, lw *cache.ListWatch, transform cache.TransformFunc, indexers cache.Indexers) *Informer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inf, ok := f.informers[name]; ok {
		return inf
	}
	if f.started {
		panic(fmt.Sprintf("kube: informer %s requested after Start", name))
	}
	inf := &Informer{name: name}
	logger := f.logger.With("informer", name)
	// Wrap list and watch so that both their failures and their successes
	// are recorded: the reflector's error handler only sees failures, and
	// only once it gives up on a list-and-watch cycle.
	tracked := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := lw.ListWithContextFunc(ctx, o)
			inf.record(err, logger)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := lw.WatchFuncWithContext(ctx, o)
			inf.record(err, logger)
			return w, err
		},
	}
	// The fake clientset of tests cannot stream watch-lists; the wrapper
	// tells the reflector so, as client-go's generated informers do.
	inf.SharedIndexInformer = cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(tracked, f.client), example, cache.SharedIndexInformerOptions{
			ResyncPeriod:      f.opts.ResyncPeriod,
			Indexers:          indexers,
			ObjectDescription: name,
		})
	if err := inf.SetTransform(transform); err != nil {
		panic(err) // only fails after Run, which cannot have happened here
	}
	if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		if benignWatchEnd(err) {
			logger.Debug("watch closed", "err", err)
			return
		}
		inf.record(err, logger)
	}); err != nil {
		panic(err)
	}
	f.informers[name] = inf
	f.order = append(f.order, name)
	return inf
}

// listWatch adapts a typed client's List and Watch to a cache.ListWatch.
func listWatch[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, o)
		},
		WatchFuncWithContext: watchFn,
	}
}

// Nodes returns the shared node informer. Its store holds *Node, not
// *corev1.Node: see StripNode.
func (f *Informers) Nodes() *Informer {
	c := f.client.CoreV1().Nodes()
	return f.get("nodes", &corev1.Node{}, f.opts.Shard.sharded(listWatch(c.List, c.Watch), f.opts.Shard.keepNode), StripNode(keptNodeLabels(f.opts.NodeLabels)), nil)
}

// Pods returns the shared pod informer, indexed by node name. With a Shard,
// it holds the pods of the shard's nodes (and on shard 0 those not
// scheduled yet); so do Nodes and NodeLeases with the nodes and Leases. Its store
// holds *Pod, not *corev1.Pod: see StripPod.
func (f *Informers) Pods() *Informer {
	c := f.client.CoreV1().Pods(metav1.NamespaceAll)
	return f.get("pods", &corev1.Pod{}, f.opts.Shard.sharded(listWatch(c.List, c.Watch), f.opts.Shard.keepPod), StripPod, cache.Indexers{PodNodeIndex: podNodeIndex})
}

// PodDisruptionBudgets returns the shared PDB informer, indexed by namespace.
func (f *Informers) PodDisruptionBudgets() *Informer {
	c := f.client.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll)
	return f.get("poddisruptionbudgets", &policyv1.PodDisruptionBudget{}, listWatch(c.List, c.Watch), StripPDB, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// NodeLeases returns the shared informer of the kubelets' Leases in
// kube-node-lease. Its store holds *Lease: see StripLease.
func (f *Informers) NodeLeases() *Informer {
	c := f.client.CoordinationV1().Leases(NodeLeaseNamespace)
	return f.get("leases", &coordinationv1.Lease{}, f.opts.Shard.sharded(listWatch(c.List, c.Watch), f.opts.Shard.keepLease), StripLease, nil)
}

func podNodeIndex(obj any) ([]string, error) {
	pod, ok := obj.(*Pod)
	if !ok {
		return nil, nil
	}
	if node := pod.NodeName(); node != "" {
		return []string{node}, nil
	}
	return nil, nil
}

// Start runs every informer requested so far until ctx ends. Informers cannot
// be added afterwards.
func (f *Informers) Start(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return
	}
	f.started = true
	for _, name := range f.order {
		go f.informers[name].RunWithContext(ctx)
	}
}

// Synced reports whether every informer has completed its initial list.
func (f *Informers) Synced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, inf := range f.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return f.started
}

// WaitForSync blocks until every informer has synced or ctx ends; the error
// names the informers that did not sync and their last list error.
func (f *Informers) WaitForSync(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if f.Synced() {
			return nil
		}
		select {
		case <-ctx.Done():
			return f.syncError(ctx.Err())
		case <-tick.C:
		}
	}
}

func (f *Informers) syncError(cause error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []string
	for _, name := range f.order {
		inf := f.informers[name]
		if inf.HasSynced() {
			continue
		}
		inf.mu.Lock()
		last := inf.lastErr
		inf.mu.Unlock()
		if last != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, last))
		} else {
			errs = append(errs, name+": no answer yet")
		}
	}
	return fmt.Errorf("informers did not sync (%w): %s", cause, strings.Join(errs, "; "))
}
