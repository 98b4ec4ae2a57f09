package kube

import (
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TestStripLease: the Lease transform keeps the name, namespace, resource
// version, renew time and duration, and drops the holder and the rest; an
// unset renew time or duration is kept as zero.
func TestStripLease(t *testing.T) {
	renew := metav1.NewMicroTime(time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC))
	in := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: NodeLeaseNamespace, Name: "n1", UID: "u1", ResourceVersion: "9",
			OwnerReferences: []metav1.OwnerReference{{Kind: "Node", Name: "n1"}}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("n1"), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &renew},
	}
	for _, c := range []struct {
		in   *coordinationv1.Lease
		want *Lease
	}{
		{in, &Lease{Meta: Meta{Namespace: NodeLeaseNamespace, Name: "n1", ResourceVersion: "9"}, RenewTime: renew, DurationSeconds: 40}},
		{&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: NodeLeaseNamespace, Name: "n2"}},
			&Lease{Meta: Meta{Namespace: NodeLeaseNamespace, Name: "n2"}}},
	} {
		out, err := StripLease(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, c.want) {
			t.Errorf("StripLease:\n got %+v\nwant %+v", out, c.want)
		}
		if key, err := cache.MetaNamespaceKeyFunc(out); err != nil || key != NodeLeaseNamespace+"/"+c.in.Name {
			t.Errorf("key of the stripped Lease = %q, %v", key, err)
		}
		if again, _ := StripLease(out); again != out {
			t.Errorf("a stripped Lease was changed: %v", again)
		}
		if cp := out.(*Lease).DeepCopyObject(); !reflect.DeepEqual(cp, out) || cp == out {
			t.Errorf("DeepCopyObject = %+v, want an equal copy of %+v", cp, out)
		}
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "kube-node-lease/x"}
	if got, _ := StripLease(tomb); got != tomb {
		t.Errorf("a tombstone was changed: %v", got)
	}
}
