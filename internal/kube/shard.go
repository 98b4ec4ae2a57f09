package kube

import (
	"context"
	"fmt"
	"hash/fnv"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Shard is the part of the cluster's nodes one of several exporters keeps:
// Index of Total. The zero Shard, like Total 1, keeps everything.
//
// A node belongs to the shard jumpHash(FNV-1a 64 of its name, Total). Its
// pods (by spec.nodeName) and its Lease (named after it) go with it, so a
// shard holds every pod of its nodes, as the drain headroom needs; pods not
// scheduled yet belong to shard 0. kube-state-metrics shards by the same
// hashes (pkg/sharding/listwatch.go) but of the object's UID, which spreads
// a node's pods over every shard; a pod knows its node's name, not the
// node's UID, so the name is what keeps them together. Jump consistent hashing
// moves only about 1/Total of the nodes when Total grows by one.
type Shard struct {
	Index, Total int
}

// Validate returns an error naming the flag values when the shard is not one
// of Total.
func (s Shard) Validate() error {
	if s.Total < 1 {
		return fmt.Errorf("--total-shards %d: must be at least 1", s.Total)
	}
	if s.Index < 0 || s.Index >= s.Total {
		return fmt.Errorf("--shard %d: must be from 0 to --total-shards minus one (%d)", s.Index, s.Total-1)
	}
	return nil
}

// Sharded tells whether the shard keeps less than the whole cluster.
func (s Shard) Sharded() bool { return s.Total > 1 }

// First tells whether this is shard 0, which serves the cluster-wide series.
func (s Shard) First() bool { return s.Index == 0 }

// OwnsNode tells whether the node named name belongs to the shard.
func (s Shard) OwnsNode(name string) bool {
	if !s.Sharded() {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(name)) // never fails
	return jumpHash(h.Sum64(), s.Total) == s.Index
}

// ownsPod tells whether the pod belongs to the shard: by its node, shard 0
// when it has none.
func (s Shard) ownsPod(pod *corev1.Pod) bool {
	if pod.Spec.NodeName == "" {
		return s.First()
	}
	return s.OwnsNode(pod.Spec.NodeName)
}

// jumpHash is Lamping and Veach's jump consistent hash ("A Fast, Minimal
// Memory, Consistent Hash Algorithm", 2014): the bucket in [0, buckets) of
// key.
func jumpHash(key uint64, buckets int) int {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// filter wraps lw so that the informer sees only the objects keep accepts.
// A watch event that moves an object out of the shard (a pod bound to
// another shard's node) becomes a deletion, one that moves it in an update
// the informer treats as an addition. Objects keep cannot read pass.
func filter(lw *cache.ListWatch, keep func(runtime.Object) (bool, bool)) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list, err := lw.ListWithContextFunc(ctx, o)
			if err != nil {
				return list, err
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return nil, fmt.Errorf("filtering a list for the shard: %w", err)
			}
			kept := items[:0]
			for _, item := range items {
				if ok, known := keep(item); ok || !known {
					kept = append(kept, item)
				}
			}
			if err := meta.SetList(list, kept); err != nil {
				return nil, fmt.Errorf("filtering a list for the shard: %w", err)
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := lw.WatchFuncWithContext(ctx, o)
			if err != nil {
				return w, err
			}
			return watch.Filter(w, func(in watch.Event) (watch.Event, bool) {
				ok, known := keep(in.Object)
				switch {
				case !known || ok:
					return in, true
				case in.Type == watch.Added:
					return in, false
				case in.Type == watch.Modified:
					in.Type = watch.Deleted // gone from the shard; a no-op when never in it
				}
				return in, true
			}), nil
		},
	}
}

// keepNode, keepPod and keepLease tell whether an object belongs to the
// shard, and whether it could tell (an object of another type passes).
func (s Shard) keepNode(obj runtime.Object) (bool, bool) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return false, false
	}
	return s.OwnsNode(n.Name), true
}

func (s Shard) keepPod(obj runtime.Object) (bool, bool) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return false, false
	}
	return s.ownsPod(p), true
}

func (s Shard) keepLease(obj runtime.Object) (bool, bool) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return false, false
	}
	return s.OwnsNode(l.Name), true
}

// sharded returns lw filtered by keep when the shard keeps less than the
// whole cluster, lw itself otherwise.
func (s Shard) sharded(lw *cache.ListWatch, keep func(runtime.Object) (bool, bool)) *cache.ListWatch {
	if !s.Sharded() {
		return lw
	}
	return filter(lw, keep)
}
