package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// TestShardedOverlay checks deploy/overlays/sharded: a StatefulSet in place
// of the Deployment, whose pods take --shard from their ordinal and whose
// --total-shards is its replica count, with the AWS collectors off (a shard
// refuses them), and otherwise the base Deployment's pod spec (security,
// resources, probes), so that the two never drift apart.
func TestShardedOverlay(t *testing.T) {
	b := build(t, "overlays/sharded")
	if d := b.ofKind("Deployment"); len(d) != 0 {
		t.Errorf("a Deployment is left beside the shards: %s", d[0].GetName())
	}
	var s appsv1.StatefulSet
	decode(t, b.find(t, "StatefulSet", deployment), &s)
	if s.Spec.ServiceName == "" || s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("serviceName %q, podManagementPolicy %q", s.Spec.ServiceName, s.Spec.PodManagementPolicy)
	}
	b.find(t, "Service", s.Spec.ServiceName)
	c := exporterContainer(t, &appsv1.Deployment{ObjectMeta: s.ObjectMeta, Spec: appsv1.DeploymentSpec{Template: s.Spec.Template}})

	// The kubelet expands $(SHARD) from the container's environment.
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "SHARD" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']"
	}) {
		t.Fatalf("no SHARD from the pod-index label in %v", c.Env)
	}
	for ordinal := range *s.Spec.Replicas {
		args := slices.Clone(c.Args)
		for j, a := range args {
			args[j] = strings.ReplaceAll(a, "$(SHARD)", fmt.Sprint(ordinal))
		}
		p, err := parseArgs(args)
		if err != nil {
			t.Fatalf("pod %d: the exporter rejects %q: %v", ordinal, args, err)
		}
		if p.cfg.Shard.Index != int(ordinal) || p.cfg.Shard.Total != int(*s.Spec.Replicas) {
			t.Errorf("pod %d of %d runs --shard %d --total-shards %d", ordinal, *s.Spec.Replicas, p.cfg.Shard.Index, p.cfg.Shard.Total)
		}
		for _, f := range []string{"collector.cni", "collector.awsquota"} {
			if flagEnabled(t, args, f) {
				t.Errorf("--%s on a shard: the exporter refuses it", f)
			}
		}
	}

	// Apart from the shard's arguments and environment, the pod spec is the
	// base Deployment's.
	base := build(t, "overlays/kops").deployment(t)
	want := base.Spec.Template.Spec.DeepCopy()
	got := s.Spec.Template.Spec.DeepCopy()
	for _, spec := range []*corev1.PodSpec{want, got} {
		for j := range spec.Containers {
			spec.Containers[j].Args, spec.Containers[j].Env, spec.Containers[j].Image = nil, nil, ""
		}
		spec.ServiceAccountName = ""
	}
	if !equality.Semantic.DeepEqual(got.Containers, want.Containers) || !equality.Semantic.DeepEqual(got.SecurityContext, want.SecurityContext) ||
		!equality.Semantic.DeepEqual(got.NodeSelector, want.NodeSelector) {
		t.Errorf("the shards' pod spec drifted from the Deployment's:\n%+v\nwant\n%+v", got, want)
	}
	if got := exporterContainer(t, &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: s.Spec.Template}}).Env; !slices.ContainsFunc(got, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
		t.Errorf("no GOMEMLIMIT in %v", got)
	}
}
