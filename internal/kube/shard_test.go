package kube

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestShardPartitionsNodes checks that every node belongs to exactly one
// shard, that shares are even, that the assignment is stable (pinned
// values: a change would move every exporter's nodes on upgrade), and that
// a shard added moves nodes only to the new shard.
func TestShardPartitionsNodes(t *testing.T) {
	const nodes = 3000
	for total := 1; total <= 5; total++ {
		counts := make([]int, total)
		for n := range nodes {
			name := fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", n/250, n%250)
			owners := 0
			for i := range total {
				if (Shard{Index: i, Total: total}).OwnsNode(name) {
					owners++
					counts[i]++
					if total > 1 && !(Shard{Index: i, Total: total - 1}).OwnsNode(name) && !(Shard{Index: total - 1, Total: total}).OwnsNode(name) {
						t.Errorf("%s moved from one old shard to another when shard %d was added", name, total-1)
					}
				}
			}
			if owners != 1 {
				t.Fatalf("%s belongs to %d of %d shards", name, owners, total)
			}
		}
		for i, c := range counts {
			if c < nodes/total*8/10 || c > nodes/total*12/10 {
				t.Errorf("shard %d of %d holds %d of %d nodes", i, total, c, nodes)
			}
		}
	}
	for name, want := range map[string]int{"node-00": 1, "ip-10-0-1-17.ec2.internal": 0, "ip-10-0-3-200.ec2.internal": 2} {
		for i := range 3 {
			if got := (Shard{Index: i, Total: 3}).OwnsNode(name); got != (i == want) {
				t.Errorf("shard %d of 3 owns %s: %v, want shard %d", i, name, got, want)
			}
		}
	}
}

// TestJumpHash checks jumpHash against values of Lamping and Veach's
// reference C++ implementation (as listed in dgryski/go-jump's tests).
func TestJumpHash(t *testing.T) {
	for _, tc := range []struct {
		key           uint64
		buckets, want int
	}{
		{0, 20, 0}, {1, 6, 0}, {1, 7, 6}, {1, 17, 6}, {1, 18, 17},
		{0xdeadbeef, 4, 3}, {0xdeadbeef, 5, 3}, {0xdeadbeef, 6, 5}, {0xdeadbeef, 17, 16},
		{0x0ddc0ffeebadf00d, 3, 2}, {0x0ddc0ffeebadf00d, 15, 2}, {0x0ddc0ffeebadf00d, 16, 15},
	} {
		if got := jumpHash(tc.key, tc.buckets); got != tc.want {
			t.Errorf("jumpHash(%#x, %d) = %d, want %d", tc.key, tc.buckets, got, tc.want)
		}
	}
}

// TestShardedPodInformer checks the pod informer of each of two shards: it
// keeps only its nodes' pods, shard 0 the pending ones, and a pending pod
// bound to the other shard's node leaves shard 0's store and enters the
// other's.
func TestShardedPodInformer(t *testing.T) {
	var a, b string // nodes of shard 0 and 1
	for n := 0; a == "" || b == ""; n++ {
		name := fmt.Sprintf("node-%02d", n)
		if (Shard{Index: 0, Total: 2}).OwnsNode(name) {
			a = name
		} else {
			b = name
		}
	}
	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	}
	client := fake.NewClientset(pod("on-a", a), pod("on-b", b), pod("pending", ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var shards []*Informer
	for i := range 2 {
		f := NewInformers(client, Options{Shard: Shard{Index: i, Total: 2}}, slog.New(slog.DiscardHandler))
		shards = append(shards, f.Pods())
		f.Start(ctx)
		if err := f.WaitForSync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitKeys := func(when string, want ...[]string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for i, inf := range shards {
			for {
				got := inf.GetStore().ListKeys()
				if fmt.Sprint(sorted(got)) == fmt.Sprint(want[i]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: shard %d holds %v, want %v", when, i, sorted(got), want[i])
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	waitKeys("at start", []string{"shop/on-a", "shop/pending"}, []string{"shop/on-b"})
	if _, err := client.CoreV1().Pods("shop").Update(ctx, pod("pending", b), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKeys("after binding the pending pod to "+b, []string{"shop/on-a"}, []string{"shop/on-b", "shop/pending"})
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
