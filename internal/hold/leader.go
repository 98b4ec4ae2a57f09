package hold

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection configures client-go's leader election on a Lease, so that
// two replicas never change the same targets: only the holder of the Lease
// applies decisions.
type LeaderElection struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // the Lease, default "upgradeguard-hold"
	Identity  string // this replica (the pod name)
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// (defaults 15s, 10s, 2s, as kube-controller-manager's).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// ErrLeaseLost is Run's error when this replica lost the Lease.
var ErrLeaseLost = errors.New("hold: lost the leader Lease")

func (le *LeaderElection) defaults() {
	if le.Name == "" {
		le.Name = "upgradeguard-hold"
	}
	if le.LeaseDuration <= 0 {
		le.LeaseDuration = 15 * time.Second
	}
	if le.RenewDeadline <= 0 {
		le.RenewDeadline = 10 * time.Second
	}
	if le.RetryPeriod <= 0 {
		le.RetryPeriod = 2 * time.Second
	}
}

// run blocks until ctx ends or the Lease is lost.
func (le *LeaderElection) run(ctx context.Context, c *Controller) error {
	le.defaults()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     le.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}
	lost := false
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				c.logger.Info("leading: the targets follow this replica's decisions", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
				c.setLeading(true)
			},
			OnStoppedLeading: func() {
				c.setLeading(false)
				lost = ctx.Err() == nil
			},
			OnNewLeader: func(id string) {
				if id != le.Identity {
					c.logger.Info("another replica leads; this one evaluates and serves /gate only", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	if lost {
		return ErrLeaseLost
	}
	return nil
}
