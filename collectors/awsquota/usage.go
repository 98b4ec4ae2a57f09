package awsquota

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/upgradeguard/upgradeguard/collectors/cni"
)

// Every listing asks for AWS's largest page, so that a refresh costs as few
// requests of the budget as it can.

func usageOnly(m map[qkey]float64) result { return result{usage: m} }

// count is a source that counts the items of a listing towards one quota.
func count(k qkey, list func(ctx context.Context) (int, error)) func(ctx context.Context) (result, error) {
	return func(ctx context.Context) (result, error) {
		n, err := list(ctx)
		if err != nil {
			return result{}, err
		}
		return usageOnly(map[qkey]float64{k: float64(n)}), nil
	}
}

func (r *region) usageSources() []sourceDef {
	ec2c := r.cl.EC2
	return []sourceDef{
		{"ec2:DescribeInstances", "on-demand and spot vCPUs per class", r.vcpuUsage},
		{"ec2:DescribeNetworkInterfaces", codeENIs, count(qkey{svcVPC, codeENIs}, func(ctx context.Context) (int, error) {
			n := 0
			p := ec2.NewDescribeNetworkInterfacesPaginator(ec2c, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(1000)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return 0, err
				}
				n += len(page.NetworkInterfaces)
			}
			return n, nil
		})},
		{"ec2:DescribeAddresses", codeEIPs, count(qkey{svcEC2, codeEIPs}, func(ctx context.Context) (int, error) {
			// Not paginated: AWS returns every address at once.
			out, err := ec2c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{
				Filters: []ec2types.Filter{{Name: aws.String("domain"), Values: []string{"vpc"}}},
			})
			if err != nil {
				return 0, err
			}
			return len(out.Addresses), nil
		})},
		{"ec2:DescribeSecurityGroups", codeSecurityGroups, count(qkey{svcVPC, codeSecurityGroups}, func(ctx context.Context) (int, error) {
			n := 0
			p := ec2.NewDescribeSecurityGroupsPaginator(ec2c, &ec2.DescribeSecurityGroupsInput{MaxResults: aws.Int32(1000)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return 0, err
				}
				n += len(page.SecurityGroups)
			}
			return n, nil
		})},
		{"ec2:DescribeLaunchTemplates", codeLaunchTemplates, count(qkey{svcEC2, codeLaunchTemplates}, func(ctx context.Context) (int, error) {
			n := 0
			p := ec2.NewDescribeLaunchTemplatesPaginator(ec2c, &ec2.DescribeLaunchTemplatesInput{MaxResults: aws.Int32(200)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return 0, err
				}
				n += len(page.LaunchTemplates)
			}
			return n, nil
		})},
		{"ec2:DescribeVolumes", "EBS storage per volume type", r.volumeUsage},
		{"ec2:DescribeSnapshots", codeSnapshots, count(qkey{svcEBS, codeSnapshots}, func(ctx context.Context) (int, error) {
			n := 0
			p := ec2.NewDescribeSnapshotsPaginator(ec2c, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return 0, err
				}
				n += len(page.Snapshots)
			}
			return n, nil
		})},
		{"ec2:DescribeNatGateways", codeNATPerZone, r.natUsage},
		{"autoscaling:DescribeAccountLimits", codeASGs + "," + codeLaunchConfigs, r.autoscalingLimits},
		{"elbv2:DescribeLoadBalancers", codeALBs + "," + codeNLBs, r.elbv2Usage},
		{"elbv2:DescribeTargetGroups", codeTargetGroups, count(qkey{svcELB, codeTargetGroups}, func(ctx context.Context) (int, error) {
			n := 0
			p := elasticloadbalancingv2.NewDescribeTargetGroupsPaginator(r.cl.ELBv2, &elasticloadbalancingv2.DescribeTargetGroupsInput{PageSize: aws.Int32(400)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return 0, err
				}
				n += len(page.TargetGroups)
			}
			return n, nil
		})},
		{"elb:DescribeLoadBalancers", codeCLBs, count(qkey{svcELB, codeCLBs}, func(ctx context.Context) (int, error) {
			n := 0
			p := elasticloadbalancing.NewDescribeLoadBalancersPaginator(r.cl.ELB, &elasticloadbalancing.DescribeLoadBalancersInput{PageSize: aws.Int32(400)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return 0, err
				}
				n += len(page.LoadBalancerDescriptions)
			}
			return n, nil
		})},
		{"autoscaling:DescribeAutoScalingGroups", "surge demand", r.surgeDemand},
	}
}

// typeInfos returns the vCPUs and network shape of instance types, asking
// DescribeInstanceTypes only about types not seen before (types do not
// change). Types AWS does not know are left out.
func (r *region) typeInfos(ctx context.Context, types []string) (map[string]typeInfo, error) {
	r.typesMu.Lock()
	defer r.typesMu.Unlock()
	var unknown []string
	for _, t := range types {
		if _, ok := r.types[t]; !ok && !slices.Contains(unknown, t) {
			unknown = append(unknown, t)
		}
	}
	slices.Sort(unknown)
	for chunk := range slices.Chunk(unknown, 100) {
		in := &ec2.DescribeInstanceTypesInput{}
		for _, t := range chunk {
			in.InstanceTypes = append(in.InstanceTypes, ec2types.InstanceType(t))
		}
		p := ec2.NewDescribeInstanceTypesPaginator(r.cl.EC2, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing instance types %v: %w", chunk, err)
			}
			for _, it := range page.InstanceTypes {
				if it.VCpuInfo != nil && it.VCpuInfo.DefaultVCpus != nil {
					ti := typeInfo{vcpus: *it.VCpuInfo.DefaultVCpus}
					ti.enis, ti.ipv4PerENI, _ = cni.NetworkShape(it)
					r.types[string(it.InstanceType)] = ti
				}
			}
		}
	}
	out := map[string]typeInfo{}
	for _, t := range types {
		if ti, ok := r.types[t]; ok {
			out[t] = ti
		}
	}
	return out, nil
}

// vcpuUsage sums the vCPUs of pending and running instances per class,
// on-demand and spot apart, and keeps their launch times (groups.go).
func (r *region) vcpuUsage(ctx context.Context) (result, error) {
	type inst struct {
		typ       string
		lifecycle ec2types.InstanceLifecycleType
		tenancy   ec2types.Tenancy
	}
	var insts []inst
	var types []string
	launched := map[string]time.Time{}
	p := ec2.NewDescribeInstancesPaginator(r.cl.EC2, &ec2.DescribeInstancesInput{
		MaxResults: aws.Int32(1000),
		Filters:    []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return result{}, err
		}
		for _, res := range page.Reservations {
			for _, i := range res.Instances {
				x := inst{typ: string(i.InstanceType), lifecycle: i.InstanceLifecycle}
				if i.Placement != nil {
					x.tenancy = i.Placement.Tenancy
				}
				insts = append(insts, x)
				types = append(types, x.typ)
				if i.LaunchTime != nil {
					launched[aws.ToString(i.InstanceId)] = *i.LaunchTime
				}
			}
		}
	}
	infos, err := r.typeInfos(ctx, types)
	if err != nil {
		return result{}, err
	}
	usage := map[qkey]float64{}
	for _, c := range classes {
		usage[qkey{svcEC2, c.onDemand}] = 0
		if c.spot != "" {
			usage[qkey{svcEC2, c.spot}] = 0
		}
	}
	for _, i := range insts {
		if i.tenancy == ec2types.TenancyHost {
			continue // dedicated hosts have their own quotas
		}
		c := classOf(i.typ)
		ti, ok := infos[i.typ]
		n := ti.vcpus
		if c == nil || !ok {
			r.logger.Debug("instance type in no vCPU quota class", "instance_type", i.typ)
			continue
		}
		switch i.lifecycle {
		case "":
			usage[qkey{svcEC2, c.onDemand}] += float64(n)
		case ec2types.InstanceLifecycleTypeSpot:
			if c.spot != "" {
				usage[qkey{svcEC2, c.spot}] += float64(n)
			}
		}
	}
	return result{usage: usage, launched: launched}, nil
}

func (r *region) volumeUsage(ctx context.Context) (result, error) {
	gib := map[string]int64{}
	p := ec2.NewDescribeVolumesPaginator(r.cl.EC2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(500)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return result{}, err
		}
		for _, v := range page.Volumes {
			gib[string(v.VolumeType)] += int64(aws.ToInt32(v.Size))
		}
	}
	usage := map[qkey]float64{}
	for typ, code := range volumeTypeCodes {
		usage[qkey{svcEBS, code}] = float64(gib[typ]) / 1024
	}
	return usageOnly(usage), nil
}

// natUsage counts the live NAT gateways of the busiest zone; the zone comes
// from the gateway's subnet.
func (r *region) natUsage(ctx context.Context) (result, error) {
	perSubnet := map[string]int{}
	p := ec2.NewDescribeNatGatewaysPaginator(r.cl.EC2, &ec2.DescribeNatGatewaysInput{
		MaxResults: aws.Int32(1000),
		Filter:     []ec2types.Filter{{Name: aws.String("state"), Values: []string{"pending", "available"}}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return result{}, err
		}
		for _, g := range page.NatGateways {
			perSubnet[aws.ToString(g.SubnetId)]++
		}
	}
	perZone := map[string]int{}
	if len(perSubnet) > 0 {
		sp := ec2.NewDescribeSubnetsPaginator(r.cl.EC2, &ec2.DescribeSubnetsInput{SubnetIds: sortedKeys(perSubnet)})
		for sp.HasMorePages() {
			page, err := sp.NextPage(ctx)
			if err != nil {
				return result{}, fmt.Errorf("finding the zones of NAT gateways' subnets: %w", err)
			}
			for _, s := range page.Subnets {
				perZone[aws.ToString(s.AvailabilityZone)] += perSubnet[aws.ToString(s.SubnetId)]
			}
		}
	}
	busiest := 0
	for _, n := range perZone {
		busiest = max(busiest, n)
	}
	return usageOnly(map[qkey]float64{{svcVPC, codeNATPerZone}: float64(busiest)}), nil
}

// autoscalingLimits takes both limit and usage of the Auto Scaling quotas
// from DescribeAccountLimits, which is fresher than Service Quotas.
func (r *region) autoscalingLimits(ctx context.Context) (result, error) {
	out, err := r.cl.AutoScaling.DescribeAccountLimits(ctx, &autoscaling.DescribeAccountLimitsInput{})
	if err != nil {
		return result{}, err
	}
	asg, lc := qkey{svcAutoScaling, codeASGs}, qkey{svcAutoScaling, codeLaunchConfigs}
	return result{
		usage: map[qkey]float64{
			asg: float64(aws.ToInt32(out.NumberOfAutoScalingGroups)),
			lc:  float64(aws.ToInt32(out.NumberOfLaunchConfigurations)),
		},
		limit: map[qkey]float64{
			asg: float64(aws.ToInt32(out.MaxNumberOfAutoScalingGroups)),
			lc:  float64(aws.ToInt32(out.MaxNumberOfLaunchConfigurations)),
		},
	}, nil
}

func (r *region) elbv2Usage(ctx context.Context) (result, error) {
	alb, nlb := 0, 0
	p := elasticloadbalancingv2.NewDescribeLoadBalancersPaginator(r.cl.ELBv2, &elasticloadbalancingv2.DescribeLoadBalancersInput{PageSize: aws.Int32(400)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return result{}, err
		}
		for _, lb := range page.LoadBalancers {
			switch lb.Type {
			case "application":
				alb++
			case "network":
				nlb++
			}
		}
	}
	return usageOnly(map[qkey]float64{{svcELB, codeALBs}: float64(alb), {svcELB, codeNLBs}: float64(nlb)}), nil
}
