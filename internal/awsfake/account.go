package awsfake

import (
	"fmt"
	"hash/fnv"
	"sync"
	"time"
)

// Account is the in-memory state of one AWS account in one region: what the
// describe calls list and what the fixture methods build. Every method is
// safe for concurrent use; the state stays consistent (an instance's ENI holds
// an address of its subnet, a subnet's available count is its usable
// addresses minus those ENIs hold, terminating an instance frees its ENIs).
//
// Getters and hooks hand out copies, never the stored records.
type Account struct {
	ID     string
	Region string

	mu                    sync.Mutex
	seq                   map[string]uint64
	salt                  uint32
	pubIPs                uint32
	timing                Timing
	onLaunch, onTerminate func(Instance)
	launchFaults          []LaunchFault
	events                []event
	timers                map[*time.Timer]struct{}
	closed                bool

	types     map[string]InstanceType
	vpcs      map[string]*vpc
	subnets   map[string]*subnet
	instances map[string]*Instance
	enis      map[string]*ENI
	volumes   map[string]*Volume
	snapshots map[string]*Snapshot
	sgs       map[string]*SecurityGroup
	addresses map[string]*Address
	nats      map[string]*NATGateway
	hosts     map[string]*Host
	lts       map[string]*LaunchTemplate
	lcs       map[string]*LaunchConfiguration
	asgs      map[string]*asg
	refreshes refreshes // instance refreshes (refresh.go)
	lifecycle lifecycle // lifecycle hooks and waiting instances (scaling_lifecyclehooks.go)
	lbs       map[string]*LoadBalancer
	tgs       map[string]*TargetGroup
	clbs      map[string]*ClassicLoadBalancer
	cuts      []TrafficCut   // terminations under load balancer traffic (targets.go)
	routed    map[string]int // round-robin position per load balancer (targets.go)
	quotas    map[string]*Quota
	reports   map[string]*report
}

// Timing sets how long the simulated lifecycle steps take. Zero durations
// make a step happen within the call that causes it, which keeps tests
// deterministic.
type Timing struct {
	// LaunchDelay is how long an Auto Scaling group takes to launch an
	// instance it decided to launch (a replacement, or a scale-up).
	LaunchDelay time.Duration
	// PendingDuration is how long a launched instance stays pending.
	PendingDuration time.Duration
	// ShutdownDuration is how long a terminating instance stays shutting-down.
	ShutdownDuration time.Duration
	// ReportDelay is how long a quota utilization report stays IN_PROGRESS.
	ReportDelay time.Duration
	// LaunchRetry is how long an Auto Scaling group waits after a failed
	// launch before it tries again; zero: at its next change only.
	LaunchRetry time.Duration
}

type event struct {
	fn   func(Instance)
	inst Instance
}

// NewAccount returns an account with the default instance-type catalogue and
// default quotas, and nothing else: no VPC until a fixture needs one.
func NewAccount(id, region string) *Account {
	h := fnv.New32a()
	h.Write([]byte(id + "/" + region))
	a := &Account{
		ID: id, Region: region,
		seq: map[string]uint64{}, salt: h.Sum32() & 0xfffff,
		timers:    map[*time.Timer]struct{}{},
		types:     map[string]InstanceType{},
		vpcs:      map[string]*vpc{},
		subnets:   map[string]*subnet{},
		instances: map[string]*Instance{},
		enis:      map[string]*ENI{},
		volumes:   map[string]*Volume{},
		snapshots: map[string]*Snapshot{},
		sgs:       map[string]*SecurityGroup{},
		addresses: map[string]*Address{},
		nats:      map[string]*NATGateway{},
		hosts:     map[string]*Host{},
		lts:       map[string]*LaunchTemplate{},
		lcs:       map[string]*LaunchConfiguration{},
		asgs:      map[string]*asg{},
		lbs:       map[string]*LoadBalancer{},
		tgs:       map[string]*TargetGroup{},
		clbs:      map[string]*ClassicLoadBalancer{},
		quotas:    map[string]*Quota{},
		reports:   map[string]*report{},
	}
	for _, t := range DefaultInstanceTypes() {
		a.types[t.Name] = t
	}
	for _, q := range DefaultQuotas() {
		a.quotas[q.ServiceCode+"/"+q.QuotaCode] = &q
	}
	return a
}

// lock and unlock guard the state; unlock then runs the hooks that the
// locked section queued, so a hook may call back into the Account.
func (a *Account) lock() { a.mu.Lock() }

func (a *Account) unlock() {
	ev := a.events
	a.events = nil
	a.mu.Unlock()
	for _, e := range ev {
		e.fn(e.inst)
	}
}

func (a *Account) emit(fn func(Instance), inst *Instance) {
	if fn != nil {
		a.events = append(a.events, event{fn: fn, inst: inst.clone()})
	}
}

// after runs fn under the lock once d has passed, or right away (the caller
// holds the lock) when d is zero.
func (a *Account) after(d time.Duration, fn func()) {
	if d <= 0 {
		fn()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		a.lock()
		defer a.unlock()
		delete(a.timers, t)
		if !a.closed {
			fn()
		}
	})
	a.timers[t] = struct{}{}
}

// stop cancels pending lifecycle steps; the Server calls it on Close.
func (a *Account) stop() {
	a.lock()
	defer a.unlock()
	a.closed = true
	for t := range a.timers {
		t.Stop()
	}
	clear(a.timers)
}

// SetTiming sets the lifecycle durations.
func (a *Account) SetTiming(t Timing) {
	a.lock()
	defer a.unlock()
	a.timing = t
}

// OnLaunch sets a hook called with every instance that comes into existence
// (AddInstance, AddASG, and the launches of Auto Scaling groups), after the
// Account's lock is released. The testbed uses it to create a node.
func (a *Account) OnLaunch(fn func(Instance)) {
	a.lock()
	defer a.unlock()
	a.onLaunch = fn
}

// OnTerminate sets a hook called with every instance that reaches the
// terminated state or is deleted.
func (a *Account) OnTerminate(fn func(Instance)) {
	a.lock()
	defer a.unlock()
	a.onTerminate = fn
}

// newID returns an AWS-shaped id (prefix, dash, 17 hex digits) unique to this
// account and region and increasing in creation order.
func (a *Account) newID(prefix string) string {
	a.seq[prefix]++
	return fmt.Sprintf("%s-%05x%012x", prefix, a.salt, a.seq[prefix])
}

func (a *Account) now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func (a *Account) arn(service, resource string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, a.Region, a.ID, resource)
}
