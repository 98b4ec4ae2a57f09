package awsquota

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// nodeShape is what one new node of a group needs.
type nodeShape struct {
	instanceType string
	spot         bool
	volumesGiB   map[string]int64 // by volume type
}

// defaultVolumeType is what EC2 creates when a block device mapping names
// no volume type.
const defaultVolumeType = "gp2"

// surgeDemand computes, for the cluster's groups, the extra usage of
// replacing SurgeNodes nodes of one group at a time: per quota, the largest
// demand of any one group.
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
		if s.instanceType == "" {
			r.logger.Warn("Auto Scaling group without a single instance type; left out of the surge demand", "asg", name)
			continue
		}
		shapes[name] = s
		types = append(types, s.instanceType)
	}
	vcpus, err := r.vcpus(ctx, types)
	if err != nil {
		return result{}, err
	}
	n := float64(r.opts.SurgeNodes)
	surge := map[qkey]float64{}
	bump := func(k qkey, v float64) { surge[k] = max(surge[k], v) }
	for name, s := range shapes {
		bump(qkey{svcVPC, codeENIs}, n*float64(r.opts.ENIsPerNode))
		for typ, gib := range s.volumesGiB {
			if code, ok := volumeTypeCodes[typ]; ok {
				bump(qkey{svcEBS, code}, n*float64(gib)/1024)
			}
		}
		c, v := classOf(s.instanceType), vcpus[s.instanceType]
		if c == nil || v == 0 {
			r.logger.Warn("instance type of group in no vCPU quota class; its vCPUs are left out of the surge demand", "asg", name, "instance_type", s.instanceType)
			continue
		}
		code := c.onDemand
		if s.spot {
			code = c.spot
		}
		if code != "" {
			bump(qkey{svcEC2, code}, n*float64(v))
		}
	}
	return result{surge: surge}, nil
}

// shapeOf reads a group's instance type, market and volumes from its launch
// template version or launch configuration. Mixed instances policies take
// the policy's launch template; their overrides are not read.
func (r *region) shapeOf(ctx context.Context, g astypes.AutoScalingGroup) (nodeShape, error) {
	lt := g.LaunchTemplate
	if lt == nil && g.MixedInstancesPolicy != nil && g.MixedInstancesPolicy.LaunchTemplate != nil {
		lt = g.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification
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
		s := nodeShape{instanceType: string(d.InstanceType), volumesGiB: map[string]int64{}}
		s.spot = d.InstanceMarketOptions != nil && d.InstanceMarketOptions.MarketType == "spot"
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
		return nodeShape{}, nil
	}
	out, err := r.cl.AutoScaling.DescribeLaunchConfigurations(ctx, &autoscaling.DescribeLaunchConfigurationsInput{LaunchConfigurationNames: []string{name}})
	if err != nil {
		return nodeShape{}, err
	}
	if len(out.LaunchConfigurations) == 0 {
		return nodeShape{}, fmt.Errorf("launch configuration %s not found", name)
	}
	lc := out.LaunchConfigurations[0]
	s := nodeShape{instanceType: aws.ToString(lc.InstanceType), spot: aws.ToString(lc.SpotPrice) != "", volumesGiB: map[string]int64{}}
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
