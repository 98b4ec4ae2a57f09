package testbed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// InstanceNodes ties the instances of a fake AWS account's Auto Scaling
// groups to kwok nodes, as a cloud's node lifecycle would: an instance a
// group launches becomes a node, and a node whose instance terminates is
// deleted (the pod garbage collector then removes what was left on it).
type InstanceNodes struct {
	mu    sync.Mutex
	errs  []error
	nodes map[string]string // instance id -> node name
}

// InstanceNodeName is the node name of an instance, as on EC2 with the
// resource name type "ip-name": ip-10-1-0-5.<region>.compute.internal.
func InstanceNodeName(inst awsfake.Instance, region string) string {
	return "ip-" + strings.ReplaceAll(inst.PrivateIP, ".", "-") + "." + region + ".compute.internal"
}

// BackInstances sets acct's OnLaunch and OnTerminate hooks so that every
// instance of an Auto Scaling group (those AddASG launches, those the
// groups launch later, after Timing.LaunchDelay) is a kwok node named
// InstanceNodeName, in the instance's zone, with the aws:/// provider ID of
// the instance and as NodeGroup the kops.k8s.io/instancegroup tag the group
// propagates to its instances, as kops labels a node with its instance
// group (else the group's name). customize, when not nil, may
// change the Node before it is created (labels, kubelet version).
// Instances outside groups are left alone. ctx bounds the API calls the
// hooks make; errors are kept for Err.
func (tb *Testbed) BackInstances(ctx context.Context, acct *awsfake.Account, customize func(awsfake.Instance, *Node)) *InstanceNodes {
	in := &InstanceNodes{nodes: map[string]string{}}
	acct.OnLaunch(func(inst awsfake.Instance) {
		if inst.ASG == "" {
			return
		}
		group := inst.Tags[DefaultNodeGroupLabel]
		if group == "" {
			group = inst.ASG
		}
		n := Node{
			Name: InstanceNodeName(inst, acct.Region), Zone: inst.AZ, InstanceType: inst.Type, NodeGroup: group,
			ProviderID: fmt.Sprintf("aws:///%s/%s", inst.AZ, inst.ID),
		}
		if customize != nil {
			customize(inst, &n)
		}
		err := tb.CreateNode(ctx, n)
		in.mu.Lock()
		defer in.mu.Unlock()
		if err != nil {
			in.errs = append(in.errs, fmt.Errorf("instance %s launched in %s: %w", inst.ID, inst.ASG, err))
			return
		}
		in.nodes[inst.ID] = n.Name
	})
	acct.OnTerminate(func(inst awsfake.Instance) {
		in.mu.Lock()
		name, ok := in.nodes[inst.ID]
		delete(in.nodes, inst.ID)
		in.mu.Unlock()
		if !ok {
			return
		}
		err := tb.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			in.mu.Lock()
			in.errs = append(in.errs, fmt.Errorf("deleting node %s of terminated instance %s: %w", name, inst.ID, err))
			in.mu.Unlock()
		}
	})
	return in
}

// Node returns the node name of an instance, if it has a node.
func (in *InstanceNodes) Node(instanceID string) (string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	n, ok := in.nodes[instanceID]
	return n, ok
}

// Err returns the errors of the hooks so far.
func (in *InstanceNodes) Err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return errors.Join(in.errs...)
}
