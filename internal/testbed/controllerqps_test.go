package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestControllerQPS starts a testbed sized for a large fill: the controller
// manager and the scheduler get the raised client rate limits (and the
// controller manager more Deployment and ReplicaSet workers, the scheduler
// a lighter profile), kwok reads
// its worker counts from a KwokConfiguration beside the stages (and starts:
// a document it could not read would stop it), and a Deployment's pods are
// still scheduled onto kwok nodes and become available.
func TestControllerQPS(t *testing.T) {
	tb := ForTest(t, Options{ControllerQPS: 300, ControllerSyncs: 20, LightScheduling: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, p := range tb.Processes() {
		switch p.Name {
		case "kube-controller-manager":
			for _, w := range []string{"--kube-api-qps=300", "--kube-api-burst=600", "--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20"} {
				if !slices.Contains(p.Args, w) {
					t.Errorf("%s: no %s in %q", p.Name, w, p.Args)
				}
			}
		case "kube-scheduler":
			// The client rate limit and the light profile, from its
			// configuration file (which it refuses to start with when bad).
			data, err := os.ReadFile(filepath.Join(tb.Dir, "kube-scheduler.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"qps: 300", "burst: 600", "percentageOfNodesToScore: 10", "- name: PodTopologySpread"} {
				if !strings.Contains(string(data), w) {
					t.Errorf("kube-scheduler.yaml: no %q in\n%s", w, data)
				}
			}
		case "kwok":
			i := slices.IndexFunc(p.Args, func(a string) bool { return strings.HasPrefix(a, "--config=") })
			if i < 0 {
				t.Fatalf("kwok: no --config in %q", p.Args)
			}
			files := strings.Split(strings.TrimPrefix(p.Args[i], "--config="), ",")
			if len(files) != 2 {
				t.Fatalf("kwok --config %q: want the stages and the options", files)
			}
			data, err := os.ReadFile(files[1])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "podPlayStageParallelism: 16") {
				t.Errorf("kwok options %s:\n%s", files[1], data)
			}
		}
	}
	for i := range 3 {
		if err := tb.CreateNode(ctx, Node{Name: fmt.Sprintf("node-%d", i), Zone: "eu-west-1a"}); err != nil {
			t.Fatal(err)
		}
	}
	one := intstr.FromInt32(1)
	if err := tb.CreateWorkload(ctx, Workload{Namespace: "team", Name: "app", Replicas: 30, MaxUnavailable: &one}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, 3*time.Minute, "30 available replicas", func(ctx context.Context) (bool, error) {
		d, err := tb.Client.AppsV1().Deployments("team").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas == 30, fmt.Errorf("%d of 30 available", d.Status.AvailableReplicas)
	}); err != nil {
		t.Fatal(err)
	}
}
