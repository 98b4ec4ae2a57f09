package hold_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/hold"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

type grant struct {
	namespace string // "" for a ClusterRole
	rule      rbacv1.PolicyRule
}

func readRBAC(t *testing.T) []grant {
	t.Helper()
	b, err := os.ReadFile("rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []grant
	for _, doc := range strings.Split(string(b), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("rbac.yaml: %v", err)
		}
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			for _, r := range o.Rules {
				out = append(out, grant{"", r})
			}
		case *rbacv1.Role:
			for _, r := range o.Rules {
				out = append(out, grant{o.Namespace, r})
			}
		}
	}
	return out
}

// call is one API request as RBAC sees it.
type call struct {
	group, resource, verb, namespace, name string
}

func calls(actions []k8stesting.Action) []call {
	var out []call
	for _, a := range actions {
		c := call{group: a.GetResource().Group, resource: a.GetResource().Resource, verb: a.GetVerb(), namespace: a.GetNamespace()}
		if sub := a.GetSubresource(); sub != "" {
			c.resource += "/" + sub
		}
		switch x := a.(type) {
		case k8stesting.GetAction: // patches too: a PatchAction has GetName
			c.name = x.GetName()
		case k8stesting.UpdateAction:
			if m, err := metaName(x.GetObject()); err == nil {
				c.name = m
			}
		}
		out = append(out, c)
	}
	return out
}

func metaName(o runtime.Object) (string, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return "", err
	}
	var m struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	err = json.Unmarshal(b, &m)
	return m.Metadata.Name, err
}

func (g grant) allows(c call) bool {
	r := g.rule
	if g.namespace != "" && g.namespace != c.namespace {
		return false
	}
	if !slices.Contains(r.APIGroups, c.group) || !slices.Contains(r.Resources, c.resource) || !slices.Contains(r.Verbs, c.verb) {
		return false
	}
	return len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, c.name)
}

type failingGate struct{}

func (failingGate) Evaluate(context.Context, string) (gate.Evaluation, error) {
	return gate.Evaluation{Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Fail, Why: "a test alert"}}}, nil
}

// flipGate fails its first evaluations, then passes.
type flipGate struct{ n atomic.Int32 }

func (f *flipGate) Evaluate(ctx context.Context, node string) (gate.Evaluation, error) {
	if f.n.Add(1) <= 5 {
		return failingGate{}.Evaluate(ctx, node)
	}
	return gate.Evaluation{Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Pass}}}, nil
}

// TestRBACGrantsEveryCallAndNothingElse runs the controller (leader
// election, every Kubernetes target, Events) through a hold and a release
// against fake clients that record each request, and checks the requests
// against rbac.yaml: each is granted, and each granted verb is used.
func TestRBACGrantsEveryCallAndNothingElse(t *testing.T) {
	grants := readRBAC(t)
	node := func(name, version string, unschedulable bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kops.k8s.io/instancegroup": "nodes"}}}
		n.Status.NodeInfo.KubeletVersion = version
		n.Spec.Unschedulable = unschedulable
		return n
	}
	kc := fake.NewClientset(node("a", "v1.36.0", true), node("b", "v1.37.0", false))
	np := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
		"metadata": map[string]any{"name": "general", "labels": map[string]any{"upgradeguard.io/hold-enabled": "true"}},
		"spec":     map[string]any{"disruption": map[string]any{"budgets": []any{map[string]any{"nodes": "10%"}}}},
	}}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{hold.NodePoolResource: "NodePoolList", hold.NodeClaimResource: "NodeClaimList"}, np)

	hooks := lifecycleHookTarget(t, kc)
	run := func(ev gate.Evaluator) {
		t.Helper()
		targets := []hold.Target{
			&hold.NodePools{Client: dyn, Names: []string{"general"}, Selector: "upgradeguard.io/hold-enabled=true"},
			&hold.Autoscaler{Client: kc},
			hooks.tgt,
		}
		c, err := hold.New(hold.Config{
			Gate: ev, Consecutive: 1, Interval: 100 * time.Millisecond, Targets: targets, Client: kc,
			Anchor: corev1.ObjectReference{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Namespace: "upgradeguard", Name: "upgradeguard-hold"},
			LeaderElection: &hold.LeaderElection{Client: kc, Namespace: "upgradeguard", Identity: "test",
				LeaseDuration: time.Second, RenewDeadline: 800 * time.Millisecond, RetryPeriod: 200 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A hold, then a release: every request the hold makes in a cycle.
	run(&flipGate{})
	got, _, _ := unstructured.NestedSlice(mustGet(t, dyn).Object, "spec", "disruption", "budgets")
	if len(got) != 1 || got[0].(map[string]any)["nodes"] != "10%" {
		t.Fatalf("the hold did not restore the NodePool: %v", got)
	}
	if ends := hooks.acct.LifecycleEnds(); len(ends) != 1 || ends[0].How != "completed" {
		t.Fatalf("the instance held at the lifecycle hook was not taken out and completed: %+v", ends)
	}
	paused := false
	for _, c := range calls(dyn.Actions()) {
		paused = paused || c.verb == "patch"
	}
	if !paused {
		t.Fatal("the hold never patched the NodePool")
	}

	all := append(calls(kc.Actions()), calls(dyn.Actions())...)
	for _, c := range all {
		ok := false
		for _, g := range grants {
			ok = ok || g.allows(c)
		}
		if !ok {
			t.Errorf("the hold calls %s %s.%s %s/%s, which rbac.yaml does not grant", c.verb, c.resource, c.group, c.namespace, c.name)
		}
	}
	for _, g := range grants {
		for _, verb := range g.rule.Verbs {
			for _, res := range g.rule.Resources {
				found := false
				for _, c := range all {
					if c.verb == verb && c.resource == res && g.allows(c) {
						found = true
					}
				}
				if !found {
					t.Errorf("rbac.yaml grants %s %s (namespace %q), which the hold never calls", verb, res, g.namespace)
				}
			}
		}
	}
}

func mustGet(t *testing.T, dyn *dynfake.FakeDynamicClient) *unstructured.Unstructured {
	t.Helper()
	np, err := dyn.Resource(hold.NodePoolResource).Get(context.Background(), "general", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return np
}

type hookFixture struct {
	tgt  *hold.LifecycleHooks
	acct *awsfake.Account
}

// lifecycleHookTarget is a group whose scale-in waits at the hold's hook,
// the instance's node with one pod, and the target in charge of the hook.
func lifecycleHookTarget(t *testing.T, kc *fake.Clientset) hookFixture {
	t.Helper()
	ctx := context.Background()
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	a := srv.Account()
	sub, err := a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: "eu-west-1a"})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := a.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: 0, Max: 2, Desired: 1, Subnets: []string{sub.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutLifecycleHook(awsfake.LifecycleHook{Name: hold.DefaultLifecycleHookName, Group: "nodes", Transition: awsfake.TransitionTerminating, HeartbeatTimeout: 300, DefaultResult: "CONTINUE"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetDesiredCapacity("nodes", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "held"},
		Spec: corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + g.Instances[0]}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Pods("web").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "web",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: ptr(true)}}},
		Spec: corev1.PodSpec{NodeName: "held"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Eviction API: the fake deletes the pod.
	kc.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := action.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction).Name
		return true, nil, kc.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), action.GetNamespace(), name)
	})
	kc.ClearActions()
	return hookFixture{acct: a, tgt: &hold.LifecycleHooks{
		Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Kube: kc, Groups: []string{"nodes"},
		TakeOut: roll.TakeOutOptions{Drain: roll.DrainOptions{Poll: 10 * time.Millisecond}, Deregistration: roll.DeregistrationOptions{Wait: 10 * time.Millisecond}},
	}}
}

func ptr[T any](v T) *T { return &v }
