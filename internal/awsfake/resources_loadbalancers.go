package awsfake

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ---- load balancers ----

// LoadBalancer is an ELBv2 load balancer (application, network, gateway).
// It holds one requester-managed ENI per subnet, as AWS's do.
type LoadBalancer struct {
	ARN            string
	Name           string
	Type           string // application, network or gateway
	Scheme         string // internet-facing or internal
	State          string
	VPCID          string
	DNSName        string
	SubnetIDs      []string
	AZs            []string
	SecurityGroups []string
	ENIs           []string
	CreatedTime    time.Time
}

// LoadBalancerSpec describes an ELBv2 load balancer to create.
type LoadBalancerSpec struct {
	Name           string
	Type           string // default application
	Scheme         string // default internet-facing
	Subnets        []string
	SecurityGroups []string
}

func (a *Account) subnetsOf(ids []string) ([]*subnet, *apiError) {
	var out []*subnet
	for _, id := range ids {
		s := a.subnets[id]
		if s == nil {
			return nil, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		if len(out) > 0 && out[0].VPCID != s.VPCID {
			return nil, errf(400, "InvalidConfigurationRequest", "Subnets %s and %s are in different VPCs", out[0].ID, s.ID)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errf(400, "ValidationError", "At least one subnet must be specified")
	}
	return out, nil
}

// AddLoadBalancer creates an active ELBv2 load balancer.
func (a *Account) AddLoadBalancer(spec LoadBalancerSpec) (LoadBalancer, error) {
	a.lock()
	defer a.unlock()
	if spec.Type == "" {
		spec.Type = "application"
	}
	if spec.Scheme == "" {
		spec.Scheme = "internet-facing"
	}
	short := map[string]string{"application": "app", "network": "net", "gateway": "gwy"}[spec.Type]
	if short == "" {
		return LoadBalancer{}, errf(400, "ValidationError", "Invalid load balancer type %q", spec.Type)
	}
	for _, lb := range a.lbs {
		if lb.Name == spec.Name {
			return LoadBalancer{}, errf(400, "DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists", spec.Name)
		}
	}
	subs, aerr := a.subnetsOf(spec.Subnets)
	if aerr != nil {
		return LoadBalancer{}, aerr
	}
	_, hex, _ := strings.Cut(a.newID("lb"), "-")
	hex = hex[1:]
	lb := &LoadBalancer{
		ARN:  a.arn("elasticloadbalancing", fmt.Sprintf("loadbalancer/%s/%s/%s", short, spec.Name, hex)),
		Name: spec.Name, Type: spec.Type, Scheme: spec.Scheme, State: "active", VPCID: subs[0].VPCID,
		DNSName:        fmt.Sprintf("%s-%s.%s.elb.amazonaws.com", spec.Name, hex[6:], a.Region),
		SecurityGroups: slices.Clone(spec.SecurityGroups), CreatedTime: a.now(),
	}
	if spec.Scheme == "internal" {
		lb.DNSName = "internal-" + lb.DNSName
	}
	itype := map[string]string{"application": "interface", "network": "network_load_balancer", "gateway": "gateway_load_balancer"}[spec.Type]
	for _, s := range subs {
		e, aerr := a.newENI(s, 1, itype, fmt.Sprintf("ELB %s/%s/%s", short, spec.Name, hex), nil)
		if aerr != nil {
			for _, id := range lb.ENIs {
				a.deleteENI(a.enis[id])
			}
			return LoadBalancer{}, aerr
		}
		e.RequesterManaged, e.Status = true, "in-use"
		lb.ENIs = append(lb.ENIs, e.ID)
		lb.SubnetIDs = append(lb.SubnetIDs, s.ID)
		lb.AZs = append(lb.AZs, s.AZ)
	}
	a.lbs[lb.ARN] = lb
	return lb.clone(), nil
}

func (lb *LoadBalancer) clone() LoadBalancer {
	out := *lb
	out.SubnetIDs, out.AZs = slices.Clone(lb.SubnetIDs), slices.Clone(lb.AZs)
	out.SecurityGroups, out.ENIs = slices.Clone(lb.SecurityGroups), slices.Clone(lb.ENIs)
	return out
}

// DeleteLoadBalancer deletes an ELBv2 load balancer by ARN or name, with its
// ENIs; its target groups stay, as in AWS.
func (a *Account) DeleteLoadBalancer(arnOrName string) error {
	a.lock()
	defer a.unlock()
	for arn, lb := range a.lbs {
		if arn == arnOrName || lb.Name == arnOrName {
			for _, id := range lb.ENIs {
				if e := a.enis[id]; e != nil {
					a.deleteENI(e)
				}
			}
			for _, tg := range a.tgs {
				tg.LoadBalancerARNs = slices.DeleteFunc(tg.LoadBalancerARNs, func(x string) bool { return x == arn })
			}
			delete(a.lbs, arn)
			return nil
		}
	}
	return errf(400, "LoadBalancerNotFound", "Load balancer '%s' not found", arnOrName)
}

// TargetGroup is an ELBv2 target group.
type TargetGroup struct {
	ARN              string
	Name             string
	Protocol         string
	Port             int32
	VPCID            string
	TargetType       string
	LoadBalancerARNs []string
	// DeregistrationDelay is how long a deregistered target stays draining
	// (AWS's attribute deregistration_delay.timeout_seconds, default 300s:
	// DefaultDeregistrationDelay when zero; negative: none).
	DeregistrationDelay time.Duration

	targets map[string]*target // instance id -> registration (targets.go)
}

// AddTargetGroup creates a target group; vpcID empty takes the first load
// balancer's VPC, or the default VPC.
func (a *Account) AddTargetGroup(tg TargetGroup) (TargetGroup, error) {
	a.lock()
	defer a.unlock()
	for _, arn := range tg.LoadBalancerARNs {
		lb := a.lbs[arn]
		if lb == nil {
			return TargetGroup{}, errf(400, "LoadBalancerNotFound", "Load balancer '%s' not found", arn)
		}
		if tg.VPCID == "" {
			tg.VPCID = lb.VPCID
		}
	}
	if tg.VPCID == "" {
		tg.VPCID = a.defaultVPC().ID
	}
	if tg.Protocol == "" {
		tg.Protocol = "HTTP"
	}
	if tg.Port == 0 {
		tg.Port = 80
	}
	if tg.TargetType == "" {
		tg.TargetType = "instance"
	}
	_, hex, _ := strings.Cut(a.newID("tg"), "-")
	tg.ARN = a.arn("elasticloadbalancing", fmt.Sprintf("targetgroup/%s/%s", tg.Name, hex[1:]))
	tg.LoadBalancerARNs = slices.Clone(tg.LoadBalancerARNs)
	stored := tg
	stored.targets = map[string]*target{}
	a.tgs[tg.ARN] = &stored
	return tg, nil
}

// DeleteTargetGroup deletes a target group by ARN or name.
func (a *Account) DeleteTargetGroup(arnOrName string) error {
	a.lock()
	defer a.unlock()
	for arn, tg := range a.tgs {
		if arn == arnOrName || tg.Name == arnOrName {
			delete(a.tgs, arn)
			return nil
		}
	}
	return errf(400, "TargetGroupNotFound", "Target group '%s' not found", arnOrName)
}

// ClassicLoadBalancer is an ELB (classic) load balancer in a VPC, holding one
// ENI per subnet.
type ClassicLoadBalancer struct {
	Name           string
	DNSName        string
	Scheme         string
	VPCID          string
	SubnetIDs      []string
	AZs            []string
	Instances      []string
	SecurityGroups []string
	ENIs           []string
	CreatedTime    time.Time
	// ConnectionDraining is how long a deregistered instance keeps its
	// in-flight connections (0: connection draining disabled, AWS's
	// default for a load balancer made by the API).
	ConnectionDraining time.Duration

	draining     map[string]time.Time // instance id -> end of its draining (targets.go)
	terminatedAt map[string]time.Time // registered instances terminated, when
}

// AddClassicLoadBalancer creates a classic load balancer in subnets, with
// instances registered.
func (a *Account) AddClassicLoadBalancer(name string, subnets, instances []string) (ClassicLoadBalancer, error) {
	a.lock()
	defer a.unlock()
	if a.clbs[name] != nil {
		return ClassicLoadBalancer{}, errf(400, "DuplicateLoadBalancerName", "Load balancer name '%s' already exists", name)
	}
	subs, aerr := a.subnetsOf(subnets)
	if aerr != nil {
		return ClassicLoadBalancer{}, aerr
	}
	for _, id := range instances {
		if a.instances[id] == nil {
			return ClassicLoadBalancer{}, errf(400, "InvalidInstance", "The instance ID '%s' is not valid", id)
		}
	}
	_, hex, _ := strings.Cut(a.newID("elb"), "-")
	c := &ClassicLoadBalancer{
		Name: name, Scheme: "internet-facing", VPCID: subs[0].VPCID, Instances: slices.Clone(instances),
		DNSName: fmt.Sprintf("%s-%s.%s.elb.amazonaws.com", name, hex[8:], a.Region), CreatedTime: a.now(),
	}
	for _, s := range subs {
		e, aerr := a.newENI(s, 1, "interface", "ELB "+name, nil)
		if aerr != nil {
			for _, id := range c.ENIs {
				a.deleteENI(a.enis[id])
			}
			return ClassicLoadBalancer{}, aerr
		}
		e.RequesterManaged, e.Status = true, "in-use"
		c.ENIs = append(c.ENIs, e.ID)
		c.SubnetIDs = append(c.SubnetIDs, s.ID)
		c.AZs = append(c.AZs, s.AZ)
	}
	a.clbs[name] = c
	return c.clone(), nil
}

func (c *ClassicLoadBalancer) clone() ClassicLoadBalancer {
	out := *c
	out.SubnetIDs, out.AZs, out.Instances = slices.Clone(c.SubnetIDs), slices.Clone(c.AZs), slices.Clone(c.Instances)
	out.SecurityGroups, out.ENIs = slices.Clone(c.SecurityGroups), slices.Clone(c.ENIs)
	out.draining, out.terminatedAt = nil, nil
	return out
}

// DeleteClassicLoadBalancer deletes a classic load balancer with its ENIs.
func (a *Account) DeleteClassicLoadBalancer(name string) error {
	a.lock()
	defer a.unlock()
	c := a.clbs[name]
	if c == nil {
		return errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	for _, id := range c.ENIs {
		if e := a.enis[id]; e != nil {
			a.deleteENI(e)
		}
	}
	delete(a.clbs, name)
	return nil
}
