package roll

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// holdSlices is an EndpointSlice cache with gate hold's Service, whose only
// endpoint is ready only while the gate says GO, beside an ordinary one.
type holdSlices struct{ holdReady bool }

func (h *holdSlices) List() []any {
	hold := &kube.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "upgradeguard", Name: "upgradeguard-hold-x"},
		Service: "upgradeguard-hold", AddressType: "IPv4", GateHold: true,
		Endpoints: []kube.Endpoint{{Address: "10.0.9.1", Ready: h.holdReady, Serving: h.holdReady}}}
	web := &kube.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-x"},
		Service: "web", AddressType: "IPv4", Endpoints: []kube.Endpoint{{Address: "10.0.0.1", Ready: true, Serving: true}}}
	return []any{hold, web}
}

func (h *holdSlices) Healthy() error { return nil }

// TestDowntimeSetsGateHoldAside: gate hold's Service
// losing its endpoints while the gate says WAIT is no downtime; the report
// names it as not counted.
func TestDowntimeSetsGateHoldAside(t *testing.T) {
	src := &holdSlices{holdReady: true}
	clk := &fakeClock{}
	s := newSampler(src, DowntimeOptions{Interval: time.Second}, clk.now, nil)
	for sec := range 10 {
		src.holdReady = sec < 3 || sec > 7 // WAIT for 5 samples
		s.sampleEndpoints()
		clk.step(time.Second)
	}
	r := s.report("r1")
	if !r.ZeroDowntime || len(r.Services) != 1 || r.Services[0].Service != "web" {
		t.Fatalf("verdict %q, services %+v; want zero downtime judged on shop/web alone", r.Verdict(), r.Services)
	}
	if len(r.GateHoldServices) != 1 || r.GateHoldServices[0] != "upgradeguard/upgradeguard-hold" {
		t.Errorf("gate hold services %v, want upgradeguard/upgradeguard-hold", r.GateHoldServices)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "Not counted, the gate hold's own (ready only while the gate says GO): upgradeguard/upgradeguard-hold.") {
		t.Errorf("the markdown does not name the hold's Service:\n%s", md.String())
	}
}

// TestSnapshotSkipsGateHold: the replacement does not wait
// for gate hold's evicted pod to be ready again (it is ready only on GO);
// it waits for the other workloads.
func TestSnapshotSkipsGateHold(t *testing.T) {
	pod := func(name string, labels map[string]string, uid string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "upgradeguard", Name: name, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: name[:len(name)-6], UID: types.UID(uid), Controller: ptr.To(true)}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
	}
	hold := pod("upgradeguard-hold-7c9f6d8b5d-x2x4z", map[string]string{kube.LabelAppName: kube.GateHoldAppName, kube.LabelAppComponent: kube.GateHoldComponent}, "rs-hold")
	exporter := pod("upgradeguard-exporter-6d5f8c7b9-kq7wz", map[string]string{kube.LabelAppName: "upgradeguard", kube.LabelAppComponent: "exporter"}, "rs-exporter")
	loads, err := snapshotWorkloads(context.Background(), fake.NewClientset(hold, exporter), []*corev1.Pod{hold, exporter})
	if err != nil {
		t.Fatal(err)
	}
	if len(loads) != 1 || loads[0].UID != "rs-exporter" {
		t.Errorf("workloads to wait for %+v, want the exporter's ReplicaSet alone", loads)
	}
}
