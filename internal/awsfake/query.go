package awsfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Auto Scaling (2011-01-01), ELBv2 (2015-12-01), ELB (2012-06-01) and STS
// (2011-06-15) speak the AWS query protocol: form-encoded Action=..&Version=..
// with wrapped lists (Names.member.1), answered by
// <ActionResponse><ActionResult>..</ActionResult><ResponseMetadata>, lists as
// <member>, errors as <ErrorResponse><Error><Type/><Code/><Message/>. Checked
// against the generated serializers.go/deserializers.go of autoscaling
// v1.80.0, elasticloadbalancingv2 v1.63.9 and elasticloadbalancing v1.41.9,
// and for STS v1.52.0 (schema-serde) against smithy-go's awsquery protocol,
// which reads the <ActionResult> element and <Error><Code>.
func init() {
	register("2011-01-01", &service{
		id: "autoscaling", proto: protoQuery, xmlns: "http://autoscaling.amazonaws.com/doc/2011-01-01/",
		ops: map[string]handler{
			"DescribeAutoScalingGroups":           asDescribeAutoScalingGroups,
			"DescribeAccountLimits":               asDescribeAccountLimits,
			"DescribeLaunchConfigurations":        asDescribeLaunchConfigurations,
			"TerminateInstanceInAutoScalingGroup": asTerminateInstanceInAutoScalingGroup,
			"SetDesiredCapacity":                  asSetDesiredCapacity,
			"SuspendProcesses":                    asSuspendProcesses,
			"ResumeProcesses":                     asResumeProcesses,
			"DescribeScalingActivities":           asDescribeScalingActivities,
			"CreateOrUpdateTags":                  asCreateOrUpdateTags,
			"DeleteTags":                          asDeleteTags,
			"StartInstanceRefresh":                asStartInstanceRefresh,
			"DescribeInstanceRefreshes":           asDescribeInstanceRefreshes,
			"CancelInstanceRefresh":               asCancelInstanceRefresh,
		},
	})
	register("2015-12-01", &service{
		id: "elbv2", proto: protoQuery, xmlns: "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
		ops: map[string]handler{
			"DescribeLoadBalancers": elbv2DescribeLoadBalancers,
			"DescribeTargetGroups":  elbv2DescribeTargetGroups,
			"DescribeTargetHealth":  elbv2DescribeTargetHealth, // targets.go
		},
	})
	register("2012-06-01", &service{
		id: "elb", proto: protoQuery, xmlns: "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/",
		ops: map[string]handler{
			"DescribeLoadBalancers":  elbDescribeLoadBalancers,
			"DescribeInstanceHealth": elbDescribeInstanceHealth, // targets.go
		},
	})
	register("2011-06-15", &service{
		id: "sts", proto: protoQuery, xmlns: "https://sts.amazonaws.com/doc/2011-06-15/",
		ops: map[string]handler{
			"GetCallerIdentity": stsGetCallerIdentity,
			"AssumeRole":        stsAssumeRole,
		},
	})
}

// ---- Auto Scaling ----

var asBadToken = errf(400, "InvalidNextToken", "The token provided is not valid.")

var asgFilters = filterSet[*asg]{
	fields: map[string]func(*asg) []string{},
	tags:   func(g *asg) map[string]string { return g.Tags },
}

var asLifecycle = map[string]string{
	"pending": "Pending", "running": "InService", "shutting-down": "Terminating",
	"stopping": "InService", "stopped": "InService",
}

func asDescribeAutoScalingGroups(c *call) (any, *apiError) {
	filters := c.form.queryFilters()
	if aerr := asgFilters.validate(filters, "ValidationError"); aerr != nil {
		return nil, aerr
	}
	size, aerr := c.pageSize("MaxRecords")
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	var all []*asg
	if names := c.form.list("AutoScalingGroupNames.member"); len(names) > 0 {
		for _, n := range names {
			// AWS leaves out names it does not know, without an error.
			if g := a.asgs[n]; g != nil && !slices.Contains(all, g) {
				all = append(all, g)
			}
		}
	} else {
		all = values(a.asgs)
	}
	var matched []*asg
	for _, g := range all {
		if asgFilters.match(g, filters) {
			matched = append(matched, g)
		}
	}
	byKey(matched, func(g *asg) string { return g.Name })
	page, next, aerr := paginate(matched, func(g *asg) string { return g.Name }, c.form.str("NextToken"), size, asBadToken)
	if aerr != nil {
		return nil, aerr
	}
	members := a.members()
	w := &xmlWriter{}
	w.list("AutoScalingGroups", "member", len(page), func(k int) {
		g := page[k]
		w.leaf("AutoScalingGroupName", g.Name)
		w.leaf("AutoScalingGroupARN", g.ARN)
		if m := g.MixedInstances; m != nil {
			w.elem("MixedInstancesPolicy", func() {
				w.elem("LaunchTemplate", func() {
					w.elem("LaunchTemplateSpecification", func() {
						w.leaf("LaunchTemplateId", g.LaunchTemplateID)
						w.leaf("LaunchTemplateName", g.LaunchTemplateName)
						w.leaf("Version", g.LaunchTemplateVersion)
					})
					w.list("Overrides", "member", len(m.InstanceTypes), func(k int) { w.leaf("InstanceType", m.InstanceTypes[k]) })
				})
				w.elem("InstancesDistribution", func() {
					w.int("OnDemandBaseCapacity", int64(m.OnDemandBaseCapacity))
					pct := int64(100)
					if m.OnDemandPercentageAboveBaseCapacity != nil {
						pct = int64(*m.OnDemandPercentageAboveBaseCapacity)
					}
					w.int("OnDemandPercentageAboveBaseCapacity", pct)
				})
			})
		} else if g.LaunchTemplateID != "" {
			w.elem("LaunchTemplate", func() {
				w.leaf("LaunchTemplateId", g.LaunchTemplateID)
				w.leaf("LaunchTemplateName", g.LaunchTemplateName)
				w.leaf("Version", g.LaunchTemplateVersion)
			})
		} else {
			w.leaf("LaunchConfigurationName", g.LaunchConfiguration)
		}
		w.int("MinSize", int64(g.Min))
		w.int("MaxSize", int64(g.Max))
		w.int("DesiredCapacity", int64(g.Desired))
		w.int("DefaultCooldown", 300)
		w.strings("AvailabilityZones", "member", g.AZs)
		w.strings("LoadBalancerNames", "member", nil)
		w.strings("TargetGroupARNs", "member", g.TargetGroupARNs)
		w.leaf("HealthCheckType", "EC2")
		w.int("HealthCheckGracePeriod", 300)
		ms := members[g.Name]
		w.list("Instances", "member", len(ms), func(p int) {
			i := ms[p]
			w.leaf("InstanceId", i.ID)
			w.leaf("InstanceType", i.Type)
			w.leaf("AvailabilityZone", i.AZ)
			w.leaf("LifecycleState", a.asLifecycleState(i))
			w.leaf("HealthStatus", "Healthy")
			if i.LaunchTemplateID != "" {
				w.elem("LaunchTemplate", func() {
					w.leaf("LaunchTemplateId", i.LaunchTemplateID)
					w.leaf("LaunchTemplateName", i.LaunchTemplateName)
					w.leaf("Version", i.LaunchTemplateVersion)
				})
			} else {
				w.opt("LaunchConfigurationName", i.LaunchConfiguration)
			}
			w.bool("ProtectedFromScaleIn", false)
		})
		w.time("CreatedTime", g.CreatedTime)
		w.list("SuspendedProcesses", "member", len(g.suspended), func(p int) {
			name := slices.Sorted(maps.Keys(g.suspended))[p]
			w.leaf("ProcessName", name)
			w.leaf("SuspensionReason", "User suspended at "+g.suspended[name].Format(time.RFC3339))
		})
		w.leaf("VPCZoneIdentifier", strings.Join(g.SubnetIDs, ","))
		w.strings("EnabledMetrics", "member", nil)
		keys := slices.Sorted(maps.Keys(g.Tags))
		w.list("Tags", "member", len(keys), func(p int) {
			w.leaf("ResourceId", g.Name)
			w.leaf("ResourceType", "auto-scaling-group")
			w.leaf("Key", keys[p])
			w.leaf("Value", g.Tags[keys[p]])
			w.bool("PropagateAtLaunch", !g.noPropagate[keys[p]])
		})
		w.strings("TerminationPolicies", "member", []string{"Default"})
		w.bool("NewInstancesProtectedFromScaleIn", false)
		w.leaf("ServiceLinkedRoleARN", "arn:aws:iam::"+a.ID+":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
		w.bool("CapacityRebalance", false)
	})
	w.opt("NextToken", next)
	return w, nil
}

// DescribeAccountLimits reads its limits from the Auto Scaling quotas, so
// SetQuota moves both views together.
func asDescribeAccountLimits(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	limit := func(code string, def float64) int64 {
		if q := a.quotas[quotaKey("autoscaling", code)]; q != nil {
			return int64(q.Value)
		}
		return int64(def)
	}
	w := &xmlWriter{}
	w.int("MaxNumberOfAutoScalingGroups", limit("L-CDE20ADC", 500))
	w.int("MaxNumberOfLaunchConfigurations", limit("L-6B80B8FA", 200))
	w.int("NumberOfAutoScalingGroups", int64(len(a.asgs)))
	w.int("NumberOfLaunchConfigurations", int64(len(a.lcs)))
	return w, nil
}

func asDescribeLaunchConfigurations(c *call) (any, *apiError) {
	size, aerr := c.pageSize("MaxRecords")
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	var all []*LaunchConfiguration
	if names := c.form.list("LaunchConfigurationNames.member"); len(names) > 0 {
		for _, n := range names {
			if lc := a.lcs[n]; lc != nil && !slices.Contains(all, lc) {
				all = append(all, lc)
			}
		}
	} else {
		all = values(a.lcs)
	}
	key := func(lc *LaunchConfiguration) string { return lc.Name }
	byKey(all, key)
	page, next, aerr := paginate(all, key, c.form.str("NextToken"), size, asBadToken)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("LaunchConfigurations", "member", len(page), func(k int) {
		lc := page[k]
		w.leaf("LaunchConfigurationName", lc.Name)
		w.leaf("LaunchConfigurationARN", lc.ARN)
		w.leaf("ImageId", lc.ImageID)
		w.leaf("KeyName", "")
		w.strings("SecurityGroups", "member", nil)
		w.leaf("UserData", "")
		w.leaf("InstanceType", lc.InstanceType)
		w.leaf("KernelId", "")
		w.leaf("RamdiskId", "")
		w.list("BlockDeviceMappings", "member", len(lc.BlockDevices), func(p int) {
			bd := lc.BlockDevices[p]
			w.leaf("DeviceName", bd.DeviceName)
			w.elem("Ebs", func() {
				w.int("VolumeSize", int64(bd.SizeGiB))
				w.leaf("VolumeType", bd.VolumeType)
				w.bool("DeleteOnTermination", bd.DeleteOnTermination)
				if bd.Iops > 0 {
					w.int("Iops", int64(bd.Iops))
				}
			})
		})
		w.elem("InstanceMonitoring", func() { w.bool("Enabled", true) })
		w.opt("SpotPrice", lc.SpotPrice)
		w.time("CreatedTime", lc.CreatedTime)
		w.bool("EbsOptimized", false)
		w.opt("PlacementTenancy", lc.Tenancy)
	})
	w.opt("NextToken", next)
	return w, nil
}

func asTerminateInstanceInAutoScalingGroup(c *call) (any, *apiError) {
	if !c.form.has("ShouldDecrementDesiredCapacity") {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value null at 'shouldDecrementDesiredCapacity' failed to satisfy constraint: Member must not be null")
	}
	decrement := c.form.bool("ShouldDecrementDesiredCapacity")
	single := c.form.str("InstanceId")
	ids := c.form.list("InstanceIds.member")
	group := c.form.str("AutoScalingGroupName")
	switch {
	case single != "" && len(ids) > 0:
		return nil, errf(400, "ValidationError", "Specify either InstanceId or InstanceIds, not both.")
	case single == "" && len(ids) == 0:
		return nil, errf(400, "ValidationError", "InstanceId or InstanceIds is required.")
	case len(ids) > 0 && group == "":
		return nil, errf(400, "ValidationError", "AutoScalingGroupName is required with InstanceIds.")
	}
	if single != "" {
		ids = []string{single}
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	for _, id := range ids {
		if i := a.instances[id]; group != "" && (i == nil || i.ASG != group) {
			return nil, errf(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: %s", id)
		}
	}
	var acts []*Activity
	for _, id := range ids {
		_, x, aerr := a.terminateInASG(id, decrement)
		if aerr != nil {
			return nil, aerr
		}
		acts = append(acts, x)
	}
	w := &xmlWriter{}
	if single != "" {
		w.elem("Activity", func() { writeActivity(w, a, acts[0]) })
	} else {
		w.list("Activities", "member", len(acts), func(k int) { writeActivity(w, a, acts[k]) })
	}
	return w, nil
}

func asSetDesiredCapacity(c *call) (any, *apiError) {
	n, ok, aerr := c.form.int("DesiredCapacity")
	if aerr != nil {
		return nil, aerr
	}
	if !ok {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value null at 'desiredCapacity' failed to satisfy constraint: Member must not be null")
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.setDesired(c.form.str("AutoScalingGroupName"), int32(n)); aerr != nil {
		return nil, aerr
	}
	return nil, nil
}

// ---- ELBv2 ----

var elbBadMarker = errf(400, "ValidationError", "Invalid value for Marker")

func elbv2DescribeLoadBalancers(c *call) (any, *apiError) {
	arns, names := c.form.list("LoadBalancerArns.member"), c.form.list("Names.member")
	if len(arns) > 0 && len(names) > 0 {
		return nil, errf(400, "ValidationError", "Load balancer names and load balancer ARNs cannot be specified at the same time")
	}
	size, aerr := c.pageSize("PageSize")
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.lbs)
	if len(arns)+len(names) > 0 {
		var picked []*LoadBalancer
		for _, want := range append(arns, names...) {
			i := slices.IndexFunc(all, func(lb *LoadBalancer) bool { return lb.ARN == want || lb.Name == want })
			if i < 0 {
				return nil, errf(400, "LoadBalancerNotFound", "One or more load balancers not found")
			}
			picked = append(picked, all[i])
		}
		all = slices.CompactFunc(byKey(picked, lbKey), func(p, q *LoadBalancer) bool { return p == q })
	}
	byKey(all, lbKey)
	page, next, aerr := paginate(all, lbKey, c.form.str("Marker"), size, elbBadMarker)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("LoadBalancers", "member", len(page), func(k int) {
		lb := page[k]
		w.leaf("LoadBalancerArn", lb.ARN)
		w.leaf("DNSName", lb.DNSName)
		w.leaf("CanonicalHostedZoneId", "Z35SXDOTRQ7X7K")
		w.time("CreatedTime", lb.CreatedTime)
		w.leaf("LoadBalancerName", lb.Name)
		w.leaf("Scheme", lb.Scheme)
		w.leaf("VpcId", lb.VPCID)
		w.elem("State", func() { w.leaf("Code", lb.State) })
		w.leaf("Type", lb.Type)
		w.list("AvailabilityZones", "member", len(lb.SubnetIDs), func(p int) {
			w.leaf("ZoneName", lb.AZs[p])
			w.leaf("SubnetId", lb.SubnetIDs[p])
		})
		if lb.Type == "application" {
			w.strings("SecurityGroups", "member", lb.SecurityGroups)
		}
		w.leaf("IpAddressType", "ipv4")
	})
	w.opt("NextMarker", next)
	return w, nil
}

func lbKey(lb *LoadBalancer) string { return lb.Name }

func elbv2DescribeTargetGroups(c *call) (any, *apiError) {
	size, aerr := c.pageSize("PageSize")
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.tgs)
	if lbArn := c.form.str("LoadBalancerArn"); lbArn != "" {
		if a.lbs[lbArn] == nil {
			return nil, errf(400, "LoadBalancerNotFound", "One or more load balancers not found")
		}
		all = slices.DeleteFunc(all, func(tg *TargetGroup) bool { return !slices.Contains(tg.LoadBalancerARNs, lbArn) })
	}
	if want := append(c.form.list("TargetGroupArns.member"), c.form.list("Names.member")...); len(want) > 0 {
		var picked []*TargetGroup
		for _, x := range want {
			i := slices.IndexFunc(all, func(tg *TargetGroup) bool { return tg.ARN == x || tg.Name == x })
			if i < 0 {
				return nil, errf(400, "TargetGroupNotFound", "One or more target groups not found")
			}
			picked = append(picked, all[i])
		}
		all = slices.CompactFunc(byKey(picked, tgKey), func(p, q *TargetGroup) bool { return p == q })
	}
	byKey(all, tgKey)
	page, next, aerr := paginate(all, tgKey, c.form.str("Marker"), size, elbBadMarker)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("TargetGroups", "member", len(page), func(k int) {
		tg := page[k]
		w.leaf("TargetGroupArn", tg.ARN)
		w.leaf("TargetGroupName", tg.Name)
		w.leaf("Protocol", tg.Protocol)
		w.int("Port", int64(tg.Port))
		w.leaf("VpcId", tg.VPCID)
		w.leaf("HealthCheckProtocol", tg.Protocol)
		w.leaf("HealthCheckPort", "traffic-port")
		w.bool("HealthCheckEnabled", true)
		w.int("HealthCheckIntervalSeconds", 30)
		w.int("HealthCheckTimeoutSeconds", 5)
		w.int("HealthyThresholdCount", 5)
		w.int("UnhealthyThresholdCount", 2)
		w.strings("LoadBalancerArns", "member", tg.LoadBalancerARNs)
		w.leaf("TargetType", tg.TargetType)
		w.leaf("IpAddressType", "ipv4")
	})
	w.opt("NextMarker", next)
	return w, nil
}

func tgKey(tg *TargetGroup) string { return tg.Name + "/" + tg.ARN }

// ---- ELB (classic) ----

func elbDescribeLoadBalancers(c *call) (any, *apiError) {
	size, aerr := c.pageSize("PageSize")
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.clbs)
	if names := c.form.list("LoadBalancerNames.member"); len(names) > 0 {
		var picked []*ClassicLoadBalancer
		for _, n := range names {
			lb := a.clbs[n]
			if lb == nil {
				return nil, errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", n)
			}
			picked = append(picked, lb)
		}
		all = picked
	}
	key := func(lb *ClassicLoadBalancer) string { return lb.Name }
	all = slices.CompactFunc(byKey(all, key), func(p, q *ClassicLoadBalancer) bool { return p == q })
	page, next, aerr := paginate(all, key, c.form.str("Marker"), size, elbBadMarker)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("LoadBalancerDescriptions", "member", len(page), func(k int) {
		lb := page[k]
		w.leaf("LoadBalancerName", lb.Name)
		w.leaf("DNSName", lb.DNSName)
		w.leaf("CanonicalHostedZoneName", lb.DNSName)
		w.leaf("CanonicalHostedZoneNameID", "Z35SXDOTRQ7X7K")
		w.strings("ListenerDescriptions", "member", nil)
		w.elem("Policies", func() {
			w.strings("AppCookieStickinessPolicies", "member", nil)
			w.strings("LBCookieStickinessPolicies", "member", nil)
			w.strings("OtherPolicies", "member", nil)
		})
		w.strings("BackendServerDescriptions", "member", nil)
		w.strings("AvailabilityZones", "member", lb.AZs)
		w.strings("Subnets", "member", lb.SubnetIDs)
		w.leaf("VPCId", lb.VPCID)
		w.list("Instances", "member", len(lb.Instances), func(p int) { w.leaf("InstanceId", lb.Instances[p]) })
		w.strings("SecurityGroups", "member", lb.SecurityGroups)
		w.time("CreatedTime", lb.CreatedTime)
		w.leaf("Scheme", lb.Scheme)
	})
	w.opt("NextMarker", next)
	return w, nil
}

// ---- STS ----

func stsGetCallerIdentity(c *call) (any, *apiError) {
	w := &xmlWriter{}
	w.leaf("Arn", c.ident.arn)
	w.leaf("UserId", c.ident.userID)
	w.leaf("Account", c.ident.account)
	return w, nil
}

var roleARN = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$`)

// AssumeRole hands out temporary credentials whose access key the Server
// remembers: requests signed with it act in the role's account, which must be
// registered (AddAccount), else AccessDenied as when a trust policy refuses.
func stsAssumeRole(c *call) (any, *apiError) {
	arn, session := c.form.str("RoleArn"), c.form.str("RoleSessionName")
	m := roleARN.FindStringSubmatch(arn)
	if m == nil {
		return nil, errf(400, "ValidationError", "%s is invalid", arn)
	}
	if session == "" {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	}
	dur, has, aerr := c.form.int("DurationSeconds")
	if aerr != nil {
		return nil, aerr
	}
	if !has {
		dur = 3600
	}
	if dur < 900 || dur > 43200 {
		return nil, errf(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	account, role := m[1], m[2]
	if c.srv.lookup(account, c.region) == nil {
		return nil, errf(403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.ident.arn, arn)
	}
	key := "ASIA" + strings.ToUpper(randHex(8))
	roleID := "AROA" + strings.ToUpper(randHex(8))
	assumed := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, role, session)
	c.srv.mu.Lock()
	c.srv.sessions[key] = identity{account: account, arn: assumed, userID: roleID + ":" + session}
	c.srv.mu.Unlock()
	w := &xmlWriter{}
	w.elem("Credentials", func() {
		w.leaf("AccessKeyId", key)
		w.leaf("SecretAccessKey", SecretKey)
		w.leaf("SessionToken", "FwoGZXIvYXdzEAwaDfake"+randHex(16))
		w.time("Expiration", time.Now().Add(time.Duration(dur)*time.Second))
	})
	w.elem("AssumedRoleUser", func() {
		w.leaf("AssumedRoleId", roleID+":"+session)
		w.leaf("Arn", assumed)
	})
	w.int("PackedPolicySize", 0)
	return w, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
