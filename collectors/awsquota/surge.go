package awsquota

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// nodeShape is what one new node of a group may need. A group with a mixed
// instances policy may launch any of its override types, on-demand or spot
// as its distribution allows: the demand counts the worst of them.
type nodeShape struct {
	instanceTypes []string
	onDemand      bool             // may launch on-demand
	spot          bool             // may launch spot
	volumesGiB    map[string]int64 // by volume type
	// unresolved says why the group's instance types are unknown
	// (attribute-based instance type selection, no type at all).
	unresolved string
}

// defaultVolumeType is what EC2 creates when a block device mapping names
// no volume type.
const defaultVolumeType = "gp2"

// surgeDemand computes, for the cluster's groups, the extra usage of
// replacing SurgeNodes nodes of one group at a time: per quota, the largest
// demand of any one group; and per group, the subnet addresses its surge
// nodes take at start.
func (r *region) surgeDemand(ctx context.Context) (result, error) {
	if r.opts.ClusterName == "" && len(r.opts.ASGNames) == 0 {
		return result{}, nil
	}
	clusterTag := "kubernetes.io/cluster/" + r.opts.ClusterName
	var groups []astypes.AutoScalingGroup
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(r.cl.AutoScaling, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return result{}, err
		}
		for _, g := range page.AutoScalingGroups {
			ours := slices.Contains(r.opts.ASGNames, aws.ToString(g.AutoScalingGroupName))
			for _, t := range g.Tags {
				ours = ours || r.opts.ClusterName != "" && aws.ToString(t.Key) == clusterTag
			}
			if ours {
				groups = append(groups, g)
			}
		}
	}
	shapes := map[string]nodeShape{}
	var types []string
	for _, g := range groups {
		name := aws.ToString(g.AutoScalingGroupName)
		s, err := r.shapeOf(ctx, g)
		if err != nil {
			return result{}, fmt.Errorf("reading the launch template or configuration of group %s: %w", name, err)
		}
		shapes[name] = s
		types = append(types, s.instanceTypes...)
	}
	infos, err := r.typeInfos(ctx, types)
	if err != nil {
		return result{}, err
	}
	n := float64(r.opts.SurgeNodes)
	cni := r.opts.CNI
	if r.opts.CNIFunc != nil {
		cni = r.opts.CNIFunc().withDefaults()
	}
	res := result{surge: map[qkey]float64{}, groupIPs: map[string]float64{}, groupPodIPs: map[string]float64{},
		groupPrefixes: map[string]float64{}, groupsKnown: true}
	for _, g := range groups {
		res.groups = append(res.groups, groupOf(g))
	}
	bump := func(k qkey, v float64) { res.surge[k] = max(res.surge[k], v) }
	for _, name := range slices.Sorted(maps.Keys(shapes)) {
		s := shapes[name]
		if s.unresolved != "" {
			r.logger.Warn("instance types of Auto Scaling group unknown; its surge demand is not counted", "asg", name, "reason", s.unresolved)
			res.unresolvedGroups++
			continue
		}
		for typ, gib := range s.volumesGiB {
			if code, ok := volumeTypeCodes[typ]; ok {
				bump(qkey{svcEBS, code}, n*float64(gib)/1024)
			}
		}
		ips, podIPs, prefixes, complete := 0.0, 0.0, 0.0, true
		for _, typ := range s.instanceTypes {
			ti, ok := infos[typ]
			c := classOf(typ)
			if c == nil || !ok || ti.vcpus == 0 {
				r.logger.Warn("instance type of group in no vCPU quota class; its vCPUs are left out of the surge demand", "asg", name, "instance_type", typ)
				complete = false
				continue
			}
			if s.onDemand {
				bump(qkey{svcEC2, c.onDemand}, n*float64(ti.vcpus))
			}
			if s.spot && c.spot != "" {
				bump(qkey{svcEC2, c.spot}, n*float64(ti.vcpus))
			}
			need := cni.start(ti)
			enis, addrs := need.enis, need.addrs
			if addrs == 0 {
				r.logger.Warn("instance type of group without network information; its addresses are left out of the surge demand", "asg", name, "instance_type", typ)
				complete = false
				enis = int64(max(cni.ENIs, 1))
			}
			bump(qkey{svcVPC, codeENIs}, n*float64(enis))
			ips = max(ips, n*float64(addrs))
			podIPs = max(podIPs, n*float64(need.podAddrs))
			prefixes = max(prefixes, n*float64(need.prefixes))
		}
		if !complete {
			res.unresolvedGroups++
			continue
		}
		res.groupIPs[name] = ips
		if cni.CustomNetworking {
			res.groupPodIPs[name] = podIPs
		}
		if cni.PrefixDelegation {
			res.groupPrefixes[name] = prefixes
		}
	}
	return res, nil
}

// CNISettings are the VPC CNI's warm pool settings (the aws-node
// DaemonSet's environment), which decide how many subnet addresses a new
// node takes before it runs a single pod.
type CNISettings struct {
	// ENIs is 1 + WARM_ENI_TARGET: ENIs attached at start when no IP
	// target is set (default 2).
	ENIs int
	// WarmIPTarget and MinimumIPTarget are WARM_IP_TARGET and
	// MINIMUM_IP_TARGET (0: unset). When either is set it replaces the
	// warm ENI behaviour.
	WarmIPTarget, MinimumIPTarget int
	// PrefixDelegation is ENABLE_PREFIX_DELEGATION; WarmPrefixTarget is
	// WARM_PREFIX_TARGET (default 1).
	PrefixDelegation bool
	WarmPrefixTarget int
	// CustomNetworking is AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: the primary
	// ENI holds no pod address and the others live in the ENIConfig's
	// subnet.
	CustomNetworking bool
}

// withDefaults fills what is unset: 2 ENIs (1 + WARM_ENI_TARGET's default
// 1) and a WARM_PREFIX_TARGET of 1, as ipamd allocates at least one prefix
// (aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go getPrefixesNeeded).
func (c CNISettings) withDefaults() CNISettings {
	if c.ENIs <= 0 {
		c.ENIs = 2
	}
	if c.WarmPrefixTarget <= 0 {
		c.WarmPrefixTarget = 1
	}
	return c
}

// shapeOf reads a group's instance types, market and volumes from its
// launch template version (with a mixed instances policy's overrides and
// distribution) or launch configuration.
func (r *region) shapeOf(ctx context.Context, g astypes.AutoScalingGroup) (nodeShape, error) {
	lt := g.LaunchTemplate
	var overrides []string
	mixed := g.MixedInstancesPolicy
	unresolved := ""
	if lt == nil && mixed != nil && mixed.LaunchTemplate != nil {
		lt = mixed.LaunchTemplate.LaunchTemplateSpecification
		for _, o := range mixed.LaunchTemplate.Overrides {
			switch {
			case o.InstanceType != nil:
				overrides = append(overrides, aws.ToString(o.InstanceType))
			case o.InstanceRequirements != nil:
				unresolved = "attribute-based instance type selection (InstanceRequirements) is not resolved"
			}
		}
	}
	if lt != nil {
		in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{aws.ToString(lt.Version)}}
		if in.Versions[0] == "" {
			in.Versions[0] = "$Default"
		}
		if id := aws.ToString(lt.LaunchTemplateId); id != "" {
			in.LaunchTemplateId = lt.LaunchTemplateId
		} else {
			in.LaunchTemplateName = lt.LaunchTemplateName
		}
		out, err := r.cl.EC2.DescribeLaunchTemplateVersions(ctx, in)
		if err != nil {
			return nodeShape{}, err
		}
		if len(out.LaunchTemplateVersions) == 0 || out.LaunchTemplateVersions[0].LaunchTemplateData == nil {
			return nodeShape{}, fmt.Errorf("launch template %s version %s not found", aws.ToString(lt.LaunchTemplateId), in.Versions[0])
		}
		d := out.LaunchTemplateVersions[0].LaunchTemplateData
		s := nodeShape{instanceTypes: overrides, volumesGiB: map[string]int64{}, unresolved: unresolved}
		if len(s.instanceTypes) == 0 && d.InstanceType != "" {
			s.instanceTypes = []string{string(d.InstanceType)}
		}
		s.spot = d.InstanceMarketOptions != nil && d.InstanceMarketOptions.MarketType == "spot"
		s.onDemand = !s.spot
		if mixed != nil {
			// AWS's defaults: all on-demand above a base of 0.
			dist := mixed.InstancesDistribution
			base, pct := int32(0), int32(100)
			if dist != nil {
				base = aws.ToInt32(dist.OnDemandBaseCapacity)
				if dist.OnDemandPercentageAboveBaseCapacity != nil {
					pct = *dist.OnDemandPercentageAboveBaseCapacity
				}
			}
			s.onDemand = base > 0 || pct > 0
			s.spot = pct < 100
		}
		if len(s.instanceTypes) == 0 && s.unresolved == "" {
			s.unresolved = "no instance type in the launch template or the overrides"
		}
		for _, bd := range d.BlockDeviceMappings {
			if bd.Ebs == nil || bd.Ebs.VolumeSize == nil {
				continue
			}
			typ := string(bd.Ebs.VolumeType)
			if typ == "" {
				typ = defaultVolumeType
			}
			s.volumesGiB[typ] += int64(*bd.Ebs.VolumeSize)
		}
		return s, nil
	}
	name := aws.ToString(g.LaunchConfigurationName)
	if name == "" {
		return nodeShape{unresolved: "neither a launch template nor a launch configuration"}, nil
	}
	out, err := r.cl.AutoScaling.DescribeLaunchConfigurations(ctx, &autoscaling.DescribeLaunchConfigurationsInput{LaunchConfigurationNames: []string{name}})
	if err != nil {
		return nodeShape{}, err
	}
	if len(out.LaunchConfigurations) == 0 {
		return nodeShape{}, fmt.Errorf("launch configuration %s not found", name)
	}
	lc := out.LaunchConfigurations[0]
	s := nodeShape{instanceTypes: []string{aws.ToString(lc.InstanceType)}, spot: aws.ToString(lc.SpotPrice) != "", volumesGiB: map[string]int64{}}
	s.onDemand = !s.spot
	for _, bd := range lc.BlockDeviceMappings {
		if bd.Ebs == nil || bd.Ebs.VolumeSize == nil {
			continue
		}
		typ := aws.ToString(bd.Ebs.VolumeType)
		if typ == "" {
			typ = defaultVolumeType
		}
		s.volumesGiB[typ] += int64(*bd.Ebs.VolumeSize)
	}
	return s, nil
}
