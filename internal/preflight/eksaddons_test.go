package preflight

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// eksFake answers DescribeAddonVersions as EKS' REST-JSON API does (GET
// /addons/supported-versions?addonName=&kubernetesVersion=&nextToken=),
// one add-on version per page so the paginator is exercised.
func eksFake(t *testing.T, versions map[string][]string, defaults map[string]string) (*eks.Client, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodGet || r.URL.Path != "/addons/supported-versions" {
			http.Error(w, `{"message":"unexpected `+r.Method+" "+r.URL.Path+`"}`, http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			t.Errorf("unsigned request")
		}
		name, release := q.Get("addonName"), q.Get("kubernetesVersion")
		vs := versions[name]
		i := 0
		if tok := q.Get("nextToken"); tok != "" {
			i = len(tok)
		}
		out := map[string]any{"addons": []any{}}
		if i < len(vs) {
			out["addons"] = []any{map[string]any{"addonName": name, "type": "networking", "addonVersions": []any{map[string]any{
				"addonVersion":    vs[i],
				"compatibilities": []any{map[string]any{"clusterVersion": release, "defaultVersion": vs[i] == defaults[name], "platformVersions": []string{"*"}}},
			}}}}
			if i+1 < len(vs) {
				out["nextToken"] = strings.Repeat("x", i+1)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	c := eks.NewFromConfig(aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	return c, &calls
}

func TestCheckAddonsOnEKS(t *testing.T) {
	client, calls := eksFake(t,
		map[string][]string{
			"vpc-cni":    {"v1.20.1-eksbuild.1", "v1.20.4-eksbuild.2"},
			"coredns":    {"v1.13.1-eksbuild.1", "v1.13.2-eksbuild.3"},
			"kube-proxy": {"v1.37.0-eksbuild.2"},
		},
		map[string]string{"vpc-cni": "v1.20.4-eksbuild.2", "coredns": "v1.13.2-eksbuild.3", "kube-proxy": "v1.37.0-eksbuild.2"})
	ds := func(name, image string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}}}}}
	}
	coredns := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "coredns", Image: "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2"}}}}}}
	cs := fake.NewClientset(
		ds("aws-node", "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.20.4-eksbuild.2"),
		ds("kube-proxy", "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.36.2-minimal-eksbuild.1"),
		coredns)
	fs := CheckAddons(context.Background(), cs, Version{1, 37}, EKSAddonVersions{client})
	by := findingsBy(fs)
	// The running VPC CNI is on the second page of the list.
	if f, ok := by["info VPC CNI"]; !ok || !strings.Contains(f.Message, "compatible with Kubernetes 1.37 (EKS lists v1.20.4-eksbuild.2)") {
		t.Errorf("VPC CNI: %+v, %v\n%+v", f, ok, fs)
	}
	if f, ok := by["warning CoreDNS"]; !ok || !strings.Contains(f.Message, "v1.11.4-eksbuild.2, not among") || !strings.Contains(f.Message, "v1.13.2-eksbuild.3") {
		t.Errorf("CoreDNS: %+v, %v", f, ok)
	}
	if f, ok := by["info kube-proxy"]; !ok || !strings.Contains(f.Message, "v1.37.0-eksbuild.2") {
		t.Errorf("kube-proxy: %+v, %v", f, ok)
	}
	if calls.Load() != 5 {
		t.Errorf("%d DescribeAddonVersions calls, want 5 (2 pages, 2 pages, 1 page)", calls.Load())
	}

	// An add-on EKS lists nothing for, and an API error: unknown.
	client, _ = eksFake(t, map[string][]string{}, nil)
	fs = CheckAddons(context.Background(), fake.NewClientset(coredns), Version{1, 37}, EKSAddonVersions{client})
	if f, ok := findingsBy(fs)["unknown CoreDNS"]; !ok || !strings.Contains(f.Message, "EKS lists no coredns version") {
		t.Errorf("no versions: %+v", fs)
	}
	broken := eks.NewFromConfig(aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String("http://127.0.0.1:1"),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""), RetryMaxAttempts: 1})
	fs = CheckAddons(context.Background(), fake.NewClientset(coredns), Version{1, 37}, EKSAddonVersions{broken})
	if f, ok := findingsBy(fs)["unknown CoreDNS"]; !ok || !strings.Contains(f.Message, "DescribeAddonVersions") {
		t.Errorf("unreachable EKS: %+v", fs)
	}
}
