package awsfake

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// EC2 speaks the EC2 query protocol: form-encoded Action=..&Version=2016-11-15
// with flattened lists (InstanceId.1, Filter.1.Name, Filter.1.Value.1), and
// answers <ActionResponse><requestId/>..</ActionResponse> with lists as
// <item>, errors as <Response><Errors><Error><Code/><Message/>. Checked against
// the generated serializers.go and deserializers.go of service/ec2 v1.344.2.
func init() {
	register("2016-11-15", &service{
		id: "ec2", proto: protoEC2, xmlns: "http://ec2.amazonaws.com/doc/2016-11-15/",
		ops: map[string]handler{
			"DescribeInstances":              ec2DescribeInstances,
			"DescribeInstanceTypes":          ec2DescribeInstanceTypes,
			"DescribeNetworkInterfaces":      ec2DescribeNetworkInterfaces,
			"DescribeAddresses":              ec2DescribeAddresses,
			"DescribeSecurityGroups":         ec2DescribeSecurityGroups,
			"DescribeSubnets":                ec2DescribeSubnets,
			"DescribeVolumes":                ec2DescribeVolumes,
			"DescribeSnapshots":              ec2DescribeSnapshots,
			"DescribeLaunchTemplates":        ec2DescribeLaunchTemplates,
			"DescribeLaunchTemplateVersions": ec2DescribeLaunchTemplateVersions,
			"DescribeNatGateways":            ec2DescribeNatGateways,
			"DescribeHosts":                  ec2DescribeHosts,
			"GetSubnetCidrReservations":      ec2GetSubnetCidrReservations,
		},
	})
}

var ec2BadToken = errf(400, "InvalidPaginationToken", "The specified pagination token is not valid or is expired.")

// describe is the shared part of the EC2 describe calls: ids asked for must
// exist (AWS fails the call with <Kind>.NotFound otherwise), then filters,
// then a page. paged false returns everything, as DescribeAddresses does.
func describe[T any](c *call, all []T, idOf func(T) string, ids []string, notFound func(string) *apiError,
	fs filterSet[T], paged bool) ([]T, string, *apiError) {
	filters := c.form.ec2Filters()
	if aerr := fs.validate(filters, "InvalidParameterValue"); aerr != nil {
		return nil, "", aerr
	}
	if len(ids) > 0 {
		byID := map[string]T{}
		for _, x := range all {
			byID[idOf(x)] = x
		}
		var picked []T
		for _, id := range ids {
			x, ok := byID[id]
			if !ok {
				return nil, "", notFound(id)
			}
			picked = append(picked, x)
		}
		all = picked
	}
	var out []T
	for _, x := range all {
		if fs.match(x, filters) {
			out = append(out, x)
		}
	}
	byKey(out, idOf)
	if !paged {
		return slices.CompactFunc(out, func(a, b T) bool { return idOf(a) == idOf(b) }), "", nil
	}
	size, aerr := c.pageSize("MaxResults")
	if aerr != nil {
		return nil, "", aerr
	}
	out = slices.CompactFunc(out, func(a, b T) bool { return idOf(a) == idOf(b) })
	return paginate(out, idOf, c.form.str("NextToken"), size, ec2BadToken)
}

func notFound(code, format string) func(string) *apiError {
	return func(id string) *apiError { return errf(400, code, format, id) }
}

func values[K comparable, V any](m map[K]V) []V { return slices.Collect(maps.Values(m)) }

func one(s string) []string { return []string{s} }

// azID is a zone id in AWS's shape: us-east-1a -> use1-az1. (Real zone ids
// are mapped per account; this one is fixed.)
func azID(az string) string {
	if len(az) < 2 {
		return ""
	}
	parts := strings.Split(az[:len(az)-1], "-")
	short := strings.Join(parts, "")
	if len(parts) == 3 && parts[1] != "" {
		short = parts[0] + parts[1][:1] + parts[2]
	}
	return fmt.Sprintf("%s-az%d", short, az[len(az)-1]-'a'+1)
}

func (a *Account) privateDNS(ip string) string {
	if ip == "" {
		return ""
	}
	name := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if a.Region == "us-east-1" {
		return name + ".ec2.internal"
	}
	return name + "." + a.Region + ".compute.internal"
}

func (a *Account) writeGroups(w *xmlWriter, ids []string) {
	w.list("groupSet", "item", len(ids), func(i int) {
		w.leaf("groupId", ids[i])
		if sg := a.sgs[ids[i]]; sg != nil {
			w.leaf("groupName", sg.Name)
		}
	})
}

// ---- DescribeInstances ----

var instanceFilters = filterSet[*Instance]{
	fields: map[string]func(*Instance) []string{
		"instance-state-name":                    func(i *Instance) []string { return one(i.State) },
		"instance-state-code":                    func(i *Instance) []string { return one(strconv.Itoa(stateCodes[i.State])) },
		"instance-id":                            func(i *Instance) []string { return one(i.ID) },
		"instance-type":                          func(i *Instance) []string { return one(i.Type) },
		"availability-zone":                      func(i *Instance) []string { return one(i.AZ) },
		"subnet-id":                              func(i *Instance) []string { return one(i.SubnetID) },
		"vpc-id":                                 func(i *Instance) []string { return one(i.VPCID) },
		"instance-lifecycle":                     func(i *Instance) []string { return one(i.Lifecycle) },
		"private-ip-address":                     func(i *Instance) []string { return one(i.PrivateIP) },
		"tenancy":                                func(i *Instance) []string { return one(i.Tenancy) },
		"host-id":                                func(i *Instance) []string { return one(i.HostID) },
		"image-id":                               func(i *Instance) []string { return one(i.ImageID) },
		"reservation-id":                         func(i *Instance) []string { return one(i.ReservationID) },
		"network-interface.network-interface-id": func(i *Instance) []string { return i.ENIs },
	},
	tags: func(i *Instance) map[string]string { return i.Tags },
}

func ec2DescribeInstances(c *call) (any, *apiError) {
	ids := c.form.list("InstanceId")
	if len(ids) > 0 && c.form.has("MaxResults") {
		return nil, errf(400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.instances), func(i *Instance) string { return i.ID }, ids,
		notFound("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist"), instanceFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	// One reservation per run of the page's instances that share one.
	var groups [][]*Instance
	for _, i := range page {
		if n := len(groups); n > 0 && groups[n-1][0].ReservationID == i.ReservationID {
			groups[n-1] = append(groups[n-1], i)
		} else {
			groups = append(groups, []*Instance{i})
		}
	}
	w := &xmlWriter{}
	w.list("reservationSet", "item", len(groups), func(g int) {
		w.leaf("reservationId", groups[g][0].ReservationID)
		w.leaf("ownerId", a.ID)
		w.open("groupSet")
		w.close("groupSet")
		w.list("instancesSet", "item", len(groups[g]), func(k int) { a.writeInstance(w, groups[g][k], k) })
	})
	w.opt("nextToken", next)
	return w, nil
}

func (a *Account) writeInstance(w *xmlWriter, i *Instance, index int) {
	t := a.types[i.Type]
	gone := i.State == "terminated"
	w.leaf("instanceId", i.ID)
	w.leaf("imageId", i.ImageID)
	w.elem("instanceState", func() {
		w.int("code", int64(stateCodes[i.State]))
		w.leaf("name", i.State)
	})
	if gone {
		w.open("privateDnsName")
		w.close("privateDnsName")
	} else {
		w.leaf("privateDnsName", a.privateDNS(i.PrivateIP))
	}
	w.open("dnsName")
	w.close("dnsName")
	if gone {
		w.leaf("reason", "User initiated")
		w.elem("stateReason", func() {
			w.leaf("code", "Client.UserInitiatedShutdown")
			w.leaf("message", "Client.UserInitiatedShutdown: User initiated shutdown")
		})
	}
	w.int("amiLaunchIndex", int64(index))
	w.leaf("instanceType", i.Type)
	w.time("launchTime", i.LaunchTime)
	w.elem("placement", func() {
		w.leaf("availabilityZone", i.AZ)
		w.leaf("availabilityZoneId", azID(i.AZ))
		w.open("groupName")
		w.close("groupName")
		w.leaf("tenancy", i.Tenancy)
		w.opt("hostId", i.HostID)
	})
	w.elem("monitoring", func() { w.leaf("state", "disabled") })
	if !gone {
		w.leaf("subnetId", i.SubnetID)
		w.leaf("vpcId", i.VPCID)
		w.leaf("privateIpAddress", i.PrivateIP)
		w.bool("sourceDestCheck", true)
		a.writeGroups(w, i.SecurityGroups)
	}
	arch := "x86_64"
	if len(t.Architectures) > 0 {
		arch = t.Architectures[0]
	}
	w.leaf("architecture", arch)
	w.leaf("rootDeviceType", "ebs")
	w.leaf("rootDeviceName", "/dev/xvda")
	w.list("blockDeviceMapping", "item", len(i.Volumes), func(k int) {
		v := a.volumes[i.Volumes[k]]
		w.leaf("deviceName", v.Device)
		w.elem("ebs", func() {
			w.leaf("volumeId", v.ID)
			w.leaf("status", "attached")
			w.time("attachTime", v.CreateTime)
			w.bool("deleteOnTermination", v.DeleteOnTermination)
		})
	})
	w.opt("instanceLifecycle", i.Lifecycle)
	w.leaf("virtualizationType", "hvm")
	w.ec2Tags(i.Tags)
	w.leaf("hypervisor", "xen")
	w.list("networkInterfaceSet", "item", len(i.ENIs), func(k int) {
		e := a.enis[i.ENIs[k]]
		w.leaf("networkInterfaceId", e.ID)
		w.leaf("subnetId", e.SubnetID)
		w.leaf("vpcId", e.VPCID)
		w.leaf("description", e.Description)
		w.leaf("ownerId", a.ID)
		w.leaf("status", e.Status)
		w.leaf("macAddress", e.MAC)
		w.leaf("privateIpAddress", e.PrivateIPs[0])
		w.leaf("privateDnsName", a.privateDNS(e.PrivateIPs[0]))
		w.bool("sourceDestCheck", true)
		a.writeGroups(w, e.SecurityGroups)
		w.elem("attachment", func() {
			w.leaf("attachmentId", "eni-attach-"+e.ID[4:])
			w.int("deviceIndex", int64(e.DeviceIndex))
			w.int("networkCardIndex", int64(e.NetworkCardIndex))
			w.leaf("status", "attached")
			w.time("attachTime", i.LaunchTime)
			w.bool("deleteOnTermination", e.DeleteOnTermination)
		})
		w.list("privateIpAddressesSet", "item", len(e.PrivateIPs), func(p int) {
			w.leaf("privateIpAddress", e.PrivateIPs[p])
			w.leaf("privateDnsName", a.privateDNS(e.PrivateIPs[p]))
			w.bool("primary", p == 0)
		})
		w.leaf("interfaceType", e.InterfaceType)
	})
	w.bool("ebsOptimized", false)
	w.bool("enaSupport", true)
}

// ---- DescribeInstanceTypes ----

var instanceTypeFilters = filterSet[InstanceType]{
	fields: map[string]func(InstanceType) []string{
		"instance-type":                             func(t InstanceType) []string { return one(t.Name) },
		"current-generation":                        func(t InstanceType) []string { return one(strconv.FormatBool(t.CurrentGeneration)) },
		"bare-metal":                                func(t InstanceType) []string { return one(strconv.FormatBool(t.BareMetal)) },
		"burstable-performance-supported":           func(t InstanceType) []string { return one(strconv.FormatBool(t.Burstable)) },
		"hypervisor":                                func(t InstanceType) []string { return one(t.Hypervisor) },
		"vcpu-info.default-vcpus":                   func(t InstanceType) []string { return one(strconv.Itoa(int(t.VCPUs))) },
		"network-info.maximum-network-interfaces":   func(t InstanceType) []string { return one(strconv.Itoa(int(t.MaxENIs))) },
		"network-info.ipv4-addresses-per-interface": func(t InstanceType) []string { return one(strconv.Itoa(int(t.IPv4PerENI))) },
		"processor-info.supported-architecture":     func(t InstanceType) []string { return t.Architectures },
		"supported-usage-class": func(t InstanceType) []string {
			if t.Spot {
				return []string{"on-demand", "spot"}
			}
			return one("on-demand")
		},
	},
}

func ec2DescribeInstanceTypes(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	names := c.form.list("InstanceType")
	for _, n := range names {
		if _, ok := a.types[n]; !ok {
			return nil, errf(400, "InvalidInstanceType", "The following supplied instance types do not exist: [%s]", n)
		}
	}
	page, next, aerr := describe(c, values(a.types), func(t InstanceType) string { return t.Name }, names,
		notFound("InvalidInstanceType", "The following supplied instance types do not exist: [%s]"), instanceTypeFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("instanceTypeSet", "item", len(page), func(k int) { writeInstanceType(w, page[k]) })
	w.opt("nextToken", next)
	return w, nil
}

func writeInstanceType(w *xmlWriter, t InstanceType) {
	w.leaf("instanceType", t.Name)
	w.bool("currentGeneration", t.CurrentGeneration)
	w.bool("freeTierEligible", t.Name == "t3.micro")
	classes := []string{"on-demand"}
	if t.Spot {
		classes = append(classes, "spot")
	}
	w.strings("supportedUsageClasses", "item", classes)
	w.strings("supportedRootDeviceTypes", "item", []string{"ebs"})
	w.strings("supportedVirtualizationTypes", "item", []string{"hvm"})
	w.bool("bareMetal", t.BareMetal)
	w.opt("hypervisor", t.Hypervisor)
	w.elem("processorInfo", func() { w.strings("supportedArchitectures", "item", t.Architectures) })
	w.elem("vCpuInfo", func() {
		w.int("defaultVCpus", int64(t.VCPUs))
		w.int("defaultCores", int64(t.Cores))
		w.int("defaultThreadsPerCore", int64(t.ThreadsPerCore))
	})
	w.elem("memoryInfo", func() { w.int("sizeInMiB", t.MemoryMiB) })
	w.bool("instanceStorageSupported", false)
	w.elem("networkInfo", func() {
		cards := t.cards()
		w.leaf("networkPerformance", t.NetworkPerformance)
		w.int("maximumNetworkInterfaces", int64(t.MaxENIs))
		w.int("maximumNetworkCards", int64(len(cards)))
		w.int("defaultNetworkCardIndex", int64(t.DefaultNetworkCard))
		w.list("networkCards", "item", len(cards), func(k int) {
			w.int("networkCardIndex", int64(cards[k].Index))
			w.leaf("networkPerformance", cards[k].Performance)
			w.int("maximumNetworkInterfaces", int64(cards[k].MaxENIs))
		})
		w.int("ipv4AddressesPerInterface", int64(t.IPv4PerENI))
		w.int("ipv6AddressesPerInterface", int64(t.IPv6PerENI))
		w.bool("ipv6Supported", t.IPv6PerENI > 0)
		w.leaf("enaSupport", "required")
		w.bool("efaSupported", len(t.NetworkCards) > 1)
	})
	if t.GPUs > 0 {
		w.elem("gpuInfo", func() {
			w.list("gpus", "item", 1, func(int) {
				w.leaf("name", t.GPUName)
				w.leaf("manufacturer", t.GPUManufacturer)
				w.int("count", int64(t.GPUs))
			})
		})
	}
	w.bool("burstablePerformanceSupported", t.Burstable)
	w.bool("dedicatedHostsSupported", !t.Burstable)
	w.bool("autoRecoverySupported", true)
}

// ---- DescribeNetworkInterfaces ----

var eniFilters = filterSet[*ENI]{
	fields: map[string]func(*ENI) []string{
		"network-interface-id":          func(e *ENI) []string { return one(e.ID) },
		"subnet-id":                     func(e *ENI) []string { return one(e.SubnetID) },
		"vpc-id":                        func(e *ENI) []string { return one(e.VPCID) },
		"availability-zone":             func(e *ENI) []string { return one(e.AZ) },
		"status":                        func(e *ENI) []string { return one(e.Status) },
		"attachment.instance-id":        func(e *ENI) []string { return one(e.InstanceID) },
		"attachment.device-index":       func(e *ENI) []string { return one(strconv.Itoa(int(e.DeviceIndex))) },
		"attachment.network-card-index": func(e *ENI) []string { return one(strconv.Itoa(int(e.NetworkCardIndex))) },
		"interface-type":                func(e *ENI) []string { return one(e.InterfaceType) },
		"requester-managed":             func(e *ENI) []string { return one(strconv.FormatBool(e.RequesterManaged)) },
		"private-ip-address":            func(e *ENI) []string { return e.PrivateIPs },
		"description":                   func(e *ENI) []string { return one(e.Description) },
	},
	tags: func(e *ENI) map[string]string { return e.Tags },
}

func ec2DescribeNetworkInterfaces(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.enis), func(e *ENI) string { return e.ID }, c.form.list("NetworkInterfaceId"),
		notFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist"), eniFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("networkInterfaceSet", "item", len(page), func(k int) { a.writeENI(w, page[k]) })
	w.opt("nextToken", next)
	return w, nil
}

func (a *Account) writeENI(w *xmlWriter, e *ENI) {
	w.leaf("networkInterfaceId", e.ID)
	w.leaf("subnetId", e.SubnetID)
	w.leaf("vpcId", e.VPCID)
	w.leaf("availabilityZone", e.AZ)
	w.leaf("availabilityZoneId", azID(e.AZ))
	w.leaf("description", e.Description)
	w.leaf("ownerId", a.ID)
	if e.RequesterManaged {
		w.leaf("requesterId", "amazon-aws")
	}
	w.bool("requesterManaged", e.RequesterManaged)
	w.leaf("status", e.Status)
	w.leaf("macAddress", e.MAC)
	w.leaf("privateIpAddress", e.PrivateIPs[0])
	w.leaf("privateDnsName", a.privateDNS(e.PrivateIPs[0]))
	w.bool("sourceDestCheck", true)
	a.writeGroups(w, e.SecurityGroups)
	if e.InstanceID != "" {
		w.elem("attachment", func() {
			w.leaf("attachmentId", "eni-attach-"+e.ID[4:])
			w.leaf("instanceId", e.InstanceID)
			w.leaf("instanceOwnerId", a.ID)
			w.int("deviceIndex", int64(e.DeviceIndex))
			w.int("networkCardIndex", int64(e.NetworkCardIndex))
			w.leaf("status", "attached")
			w.bool("deleteOnTermination", e.DeleteOnTermination)
		})
	}
	for _, ad := range a.addresses {
		if ad.ENIID == e.ID {
			w.elem("association", func() {
				w.leaf("publicIp", ad.PublicIP)
				w.leaf("ipOwnerId", a.ID)
				w.leaf("allocationId", ad.AllocationID)
				w.leaf("associationId", ad.AssociationID)
			})
			break
		}
	}
	w.ec2Tags(e.Tags)
	w.list("privateIpAddressesSet", "item", len(e.PrivateIPs), func(p int) {
		w.leaf("privateIpAddress", e.PrivateIPs[p])
		w.leaf("privateDnsName", a.privateDNS(e.PrivateIPs[p]))
		w.bool("primary", p == 0)
	})
	if len(e.IPv4Prefixes) > 0 {
		w.list("ipv4PrefixSet", "item", len(e.IPv4Prefixes), func(p int) { w.leaf("ipv4Prefix", e.IPv4Prefixes[p]) })
	}
	w.open("ipv6AddressesSet")
	w.close("ipv6AddressesSet")
	w.leaf("interfaceType", e.InterfaceType)
}

// ---- DescribeAddresses ----

var addressFilters = filterSet[*Address]{
	fields: map[string]func(*Address) []string{
		"allocation-id":        func(ad *Address) []string { return one(ad.AllocationID) },
		"public-ip":            func(ad *Address) []string { return one(ad.PublicIP) },
		"instance-id":          func(ad *Address) []string { return one(ad.InstanceID) },
		"network-interface-id": func(ad *Address) []string { return one(ad.ENIID) },
		"association-id":       func(ad *Address) []string { return one(ad.AssociationID) },
		"private-ip-address":   func(ad *Address) []string { return one(ad.PrivateIP) },
		"domain":               func(ad *Address) []string { return one(ad.Domain) },
	},
	tags: func(ad *Address) map[string]string { return ad.Tags },
}

func ec2DescribeAddresses(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.addresses)
	byIP := map[string]*Address{}
	for _, ad := range all {
		byIP[ad.PublicIP] = ad
	}
	ids := c.form.list("AllocationId")
	for _, ip := range c.form.list("PublicIp") {
		ad := byIP[ip]
		if ad == nil {
			return nil, errf(400, "InvalidAddress.NotFound", "Address '%s' not found.", ip)
		}
		ids = append(ids, ad.AllocationID)
	}
	list, _, aerr := describe(c, all, func(ad *Address) string { return ad.AllocationID }, ids,
		notFound("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist"), addressFilters, false)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("addressesSet", "item", len(list), func(k int) {
		ad := list[k]
		w.leaf("publicIp", ad.PublicIP)
		w.leaf("allocationId", ad.AllocationID)
		w.leaf("domain", ad.Domain)
		w.opt("instanceId", ad.InstanceID)
		w.opt("associationId", ad.AssociationID)
		w.opt("networkInterfaceId", ad.ENIID)
		if ad.ENIID != "" {
			w.leaf("networkInterfaceOwnerId", a.ID)
		}
		w.opt("privateIpAddress", ad.PrivateIP)
		w.ec2Tags(ad.Tags)
		w.leaf("publicIpv4Pool", "amazon")
		w.leaf("networkBorderGroup", a.Region)
	})
	return w, nil
}

// ---- DescribeSecurityGroups ----

var sgFilters = filterSet[*SecurityGroup]{
	fields: map[string]func(*SecurityGroup) []string{
		"group-id":    func(g *SecurityGroup) []string { return one(g.ID) },
		"group-name":  func(g *SecurityGroup) []string { return one(g.Name) },
		"vpc-id":      func(g *SecurityGroup) []string { return one(g.VPCID) },
		"description": func(g *SecurityGroup) []string { return one(g.Description) },
		"owner-id":    func(g *SecurityGroup) []string { return nil },
	},
	tags: func(g *SecurityGroup) map[string]string { return g.Tags },
}

func ec2DescribeSecurityGroups(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.sgs)
	ids := c.form.list("GroupId")
	for _, name := range c.form.list("GroupName") {
		found := false
		for _, g := range all {
			if g.Name == name {
				ids, found = append(ids, g.ID), true
			}
		}
		if !found {
			return nil, errf(400, "InvalidGroup.NotFound", "The security group '%s' does not exist", name)
		}
	}
	page, next, aerr := describe(c, all, func(g *SecurityGroup) string { return g.ID }, ids,
		notFound("InvalidGroup.NotFound", "The security group '%s' does not exist"), sgFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("securityGroupInfo", "item", len(page), func(k int) {
		g := page[k]
		w.leaf("ownerId", a.ID)
		w.leaf("groupId", g.ID)
		w.leaf("groupName", g.Name)
		w.leaf("groupDescription", g.Description)
		w.leaf("vpcId", g.VPCID)
		w.open("ipPermissions")
		w.close("ipPermissions")
		w.open("ipPermissionsEgress")
		w.close("ipPermissionsEgress")
		w.ec2Tags(g.Tags)
		w.leaf("securityGroupArn", a.arn("ec2", "security-group/"+g.ID))
	})
	w.opt("nextToken", next)
	return w, nil
}

// ---- DescribeSubnets ----

var subnetFilters = filterSet[*subnet]{
	fields: map[string]func(*subnet) []string{
		"subnet-id":                  func(s *subnet) []string { return one(s.ID) },
		"vpc-id":                     func(s *subnet) []string { return one(s.VPCID) },
		"availability-zone":          func(s *subnet) []string { return one(s.AZ) },
		"availabilityZone":           func(s *subnet) []string { return one(s.AZ) },
		"availability-zone-id":       func(s *subnet) []string { return one(azID(s.AZ)) },
		"cidr-block":                 func(s *subnet) []string { return one(s.CIDR) },
		"cidrBlock":                  func(s *subnet) []string { return one(s.CIDR) },
		"default-for-az":             func(s *subnet) []string { return one(strconv.FormatBool(s.DefaultForAZ)) },
		"state":                      func(s *subnet) []string { return one("available") },
		"available-ip-address-count": func(s *subnet) []string { return one(strconv.Itoa(s.free())) },
	},
	tags: func(s *subnet) map[string]string { return s.Tags },
}

func ec2DescribeSubnets(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.subnets), func(s *subnet) string { return s.ID }, c.form.list("SubnetId"),
		notFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist"), subnetFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("subnetSet", "item", len(page), func(k int) {
		s := page[k]
		w.leaf("subnetId", s.ID)
		w.leaf("subnetArn", a.arn("ec2", "subnet/"+s.ID))
		w.leaf("state", "available")
		w.leaf("ownerId", a.ID)
		w.leaf("vpcId", s.VPCID)
		w.leaf("cidrBlock", s.CIDR)
		w.open("ipv6CidrBlockAssociationSet")
		w.close("ipv6CidrBlockAssociationSet")
		w.int("availableIpAddressCount", int64(s.free()))
		w.leaf("availabilityZone", s.AZ)
		w.leaf("availabilityZoneId", azID(s.AZ))
		w.bool("defaultForAz", s.DefaultForAZ)
		w.bool("mapPublicIpOnLaunch", s.DefaultForAZ)
		w.bool("assignIpv6AddressOnCreation", false)
		w.ec2Tags(s.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

// ---- DescribeVolumes ----

var volumeFilters = filterSet[*Volume]{
	fields: map[string]func(*Volume) []string{
		"volume-id":              func(v *Volume) []string { return one(v.ID) },
		"volume-type":            func(v *Volume) []string { return one(v.Type) },
		"status":                 func(v *Volume) []string { return one(v.State) },
		"size":                   func(v *Volume) []string { return one(strconv.Itoa(int(v.SizeGiB))) },
		"availability-zone":      func(v *Volume) []string { return one(v.AZ) },
		"attachment.instance-id": func(v *Volume) []string { return one(v.InstanceID) },
		"attachment.device":      func(v *Volume) []string { return one(v.Device) },
		"encrypted":              func(v *Volume) []string { return one(strconv.FormatBool(v.Encrypted)) },
		"snapshot-id":            func(v *Volume) []string { return one(v.SnapshotID) },
		"attachment.delete-on-termination": func(v *Volume) []string {
			return one(strconv.FormatBool(v.DeleteOnTermination))
		},
		"attachment.status": func(v *Volume) []string {
			if v.InstanceID != "" {
				return one("attached")
			}
			return nil
		},
	},
	tags: func(v *Volume) map[string]string { return v.Tags },
}

func ec2DescribeVolumes(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.volumes), func(v *Volume) string { return v.ID }, c.form.list("VolumeId"),
		notFound("InvalidVolume.NotFound", "The volume '%s' does not exist."), volumeFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("volumeSet", "item", len(page), func(k int) {
		v := page[k]
		w.leaf("volumeId", v.ID)
		w.int("size", int64(v.SizeGiB))
		w.leaf("snapshotId", v.SnapshotID)
		w.leaf("availabilityZone", v.AZ)
		w.leaf("availabilityZoneId", azID(v.AZ))
		w.leaf("status", v.State)
		w.time("createTime", v.CreateTime)
		n := 0
		if v.InstanceID != "" {
			n = 1
		}
		w.list("attachmentSet", "item", n, func(int) {
			w.leaf("volumeId", v.ID)
			w.leaf("instanceId", v.InstanceID)
			w.leaf("device", v.Device)
			w.leaf("status", "attached")
			w.time("attachTime", v.CreateTime)
			w.bool("deleteOnTermination", v.DeleteOnTermination)
		})
		w.leaf("volumeType", v.Type)
		if v.Iops > 0 {
			w.int("iops", int64(v.Iops))
		} else if v.Type == "gp3" {
			w.int("iops", 3000)
		}
		if v.Type == "gp3" {
			w.int("throughput", 125)
		}
		w.bool("encrypted", v.Encrypted)
		w.bool("multiAttachEnabled", false)
		w.ec2Tags(v.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

// ---- DescribeSnapshots ----

var snapshotFilters = filterSet[*Snapshot]{
	fields: map[string]func(*Snapshot) []string{
		"snapshot-id": func(s *Snapshot) []string { return one(s.ID) },
		"volume-id":   func(s *Snapshot) []string { return one(s.VolumeID) },
		"status":      func(s *Snapshot) []string { return one(s.State) },
		"owner-id":    func(s *Snapshot) []string { return one(s.OwnerID) },
		"owner-alias": func(s *Snapshot) []string { return one(s.OwnerAlias) },
		"volume-size": func(s *Snapshot) []string { return one(strconv.Itoa(int(s.SizeGiB))) },
		"description": func(s *Snapshot) []string { return one(s.Description) },
	},
	tags: func(s *Snapshot) map[string]string { return s.Tags },
}

func ec2DescribeSnapshots(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.snapshots)
	if owners := c.form.list("Owner"); len(owners) > 0 {
		all = slices.DeleteFunc(all, func(s *Snapshot) bool {
			for _, o := range owners {
				if o == "self" && s.OwnerID == a.ID || o == s.OwnerID || o != "" && o == s.OwnerAlias {
					return false
				}
			}
			return true
		})
	}
	page, next, aerr := describe(c, all, func(s *Snapshot) string { return s.ID }, c.form.list("SnapshotId"),
		notFound("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist."), snapshotFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("snapshotSet", "item", len(page), func(k int) {
		s := page[k]
		w.leaf("snapshotId", s.ID)
		w.leaf("volumeId", s.VolumeID)
		w.leaf("status", s.State)
		w.time("startTime", s.StartTime)
		w.leaf("progress", "100%")
		w.leaf("ownerId", s.OwnerID)
		w.opt("ownerAlias", s.OwnerAlias)
		w.int("volumeSize", int64(s.SizeGiB))
		w.leaf("description", s.Description)
		w.bool("encrypted", false)
		w.leaf("storageTier", "standard")
		w.ec2Tags(s.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

// ---- DescribeLaunchTemplates and DescribeLaunchTemplateVersions ----

var ltFilters = filterSet[*LaunchTemplate]{
	fields: map[string]func(*LaunchTemplate) []string{
		"launch-template-name": func(lt *LaunchTemplate) []string { return one(lt.Name) },
	},
	tags: func(lt *LaunchTemplate) map[string]string { return lt.Tags },
}

func ec2DescribeLaunchTemplates(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	ids := c.form.list("LaunchTemplateId")
	for _, name := range c.form.list("LaunchTemplateName") {
		lt := a.ltByName(name)
		if lt == nil {
			return nil, errf(400, "InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
		ids = append(ids, lt.ID)
	}
	page, next, aerr := describe(c, values(a.lts), func(lt *LaunchTemplate) string { return lt.ID }, ids,
		notFound("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist."), ltFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("launchTemplates", "item", len(page), func(k int) {
		lt := page[k]
		w.leaf("launchTemplateId", lt.ID)
		w.leaf("launchTemplateName", lt.Name)
		w.time("createTime", lt.CreateTime)
		w.leaf("createdBy", "arn:aws:iam::"+a.ID+":user/awsfake")
		w.int("defaultVersionNumber", lt.DefaultVersion)
		w.int("latestVersionNumber", lt.LatestVersion)
		w.ec2Tags(lt.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

type ltVersion struct {
	lt *LaunchTemplate
	v  *LaunchTemplateVersion
}

func (x ltVersion) key() string { return fmt.Sprintf("%s/%012d", x.lt.ID, x.v.Number) }

var ltVersionFilters = filterSet[ltVersion]{
	fields: map[string]func(ltVersion) []string{
		"instance-type": func(x ltVersion) []string { return one(x.v.Data.InstanceType) },
		"image-id":      func(x ltVersion) []string { return one(x.v.Data.ImageID) },
		"is-default-version": func(x ltVersion) []string {
			return one(strconv.FormatBool(x.v.Number == x.lt.DefaultVersion))
		},
	},
}

func ec2DescribeLaunchTemplateVersions(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	filters := c.form.ec2Filters()
	if aerr := ltVersionFilters.validate(filters, "InvalidParameterValue"); aerr != nil {
		return nil, aerr
	}
	var templates []*LaunchTemplate
	id, name := c.form.str("LaunchTemplateId"), c.form.str("LaunchTemplateName")
	switch {
	case id != "":
		lt := a.lts[id]
		if lt == nil {
			return nil, errf(400, "InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
		templates = []*LaunchTemplate{lt}
	case name != "":
		lt := a.ltByName(name)
		if lt == nil {
			return nil, errf(400, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
		}
		templates = []*LaunchTemplate{lt}
	default:
		templates = values(a.lts)
	}
	versions := c.form.list("LaunchTemplateVersion")
	if id == "" && name == "" {
		for _, v := range versions {
			if v != "$Latest" && v != "$Default" {
				return nil, errf(400, "InvalidParameterCombination", "Without a launch template, only the $Latest and $Default versions can be described.")
			}
		}
		if len(versions) == 0 {
			return nil, errf(400, "MissingParameter", "A launch template ID or name, or the $Latest or $Default version, must be specified.")
		}
	}
	minV, _, aerr := c.form.int("MinVersion")
	if aerr != nil {
		return nil, aerr
	}
	maxV, hasMax, aerr := c.form.int("MaxVersion")
	if aerr != nil {
		return nil, aerr
	}
	var all []ltVersion
	for _, lt := range templates {
		if len(versions) > 0 {
			for _, want := range versions {
				v, ok := lt.version(want)
				if !ok {
					return nil, errf(400, "InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s of %s", want, lt.ID)
				}
				all = append(all, ltVersion{lt, v})
			}
			continue
		}
		for i := range lt.Versions {
			v := &lt.Versions[i]
			if v.Number >= int64(minV) && (!hasMax || v.Number <= int64(maxV)) {
				all = append(all, ltVersion{lt, v})
			}
		}
	}
	var matched []ltVersion
	for _, x := range all {
		if ltVersionFilters.match(x, filters) {
			matched = append(matched, x)
		}
	}
	byKey(matched, ltVersion.key)
	matched = slices.CompactFunc(matched, func(p, q ltVersion) bool { return p.key() == q.key() })
	size, aerr := c.pageSize("MaxResults")
	if aerr != nil {
		return nil, aerr
	}
	page, next, aerr := paginate(matched, ltVersion.key, c.form.str("NextToken"), size, ec2BadToken)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("launchTemplateVersionSet", "item", len(page), func(k int) {
		x := page[k]
		w.leaf("launchTemplateId", x.lt.ID)
		w.leaf("launchTemplateName", x.lt.Name)
		w.int("versionNumber", x.v.Number)
		w.opt("versionDescription", x.v.Description)
		w.time("createTime", x.v.CreateTime)
		w.leaf("createdBy", "arn:aws:iam::"+a.ID+":user/awsfake")
		w.bool("defaultVersion", x.v.Number == x.lt.DefaultVersion)
		w.elem("launchTemplateData", func() { writeLTData(w, x.v.Data) })
	})
	w.opt("nextToken", next)
	return w, nil
}

func writeLTData(w *xmlWriter, d LaunchTemplateData) {
	w.opt("imageId", d.ImageID)
	w.opt("instanceType", d.InstanceType)
	if len(d.BlockDevices) > 0 {
		w.list("blockDeviceMappingSet", "item", len(d.BlockDevices), func(k int) {
			bd := d.BlockDevices[k]
			w.leaf("deviceName", bd.DeviceName)
			w.elem("ebs", func() {
				w.bool("deleteOnTermination", bd.DeleteOnTermination)
				if bd.Iops > 0 {
					w.int("iops", int64(bd.Iops))
				}
				w.int("volumeSize", int64(bd.SizeGiB))
				w.leaf("volumeType", bd.VolumeType)
			})
		})
	}
	if d.Spot {
		w.elem("instanceMarketOptions", func() { w.leaf("marketType", "spot") })
	}
	if len(d.SecurityGroupIDs) > 0 {
		w.strings("securityGroupIdSet", "item", d.SecurityGroupIDs)
	}
}

// ---- DescribeNatGateways ----

var natFilters = filterSet[*NATGateway]{
	fields: map[string]func(*NATGateway) []string{
		"nat-gateway-id": func(n *NATGateway) []string { return one(n.ID) },
		"subnet-id":      func(n *NATGateway) []string { return one(n.SubnetID) },
		"vpc-id":         func(n *NATGateway) []string { return one(n.VPCID) },
		"state":          func(n *NATGateway) []string { return one(n.State) },
	},
	tags: func(n *NATGateway) map[string]string { return n.Tags },
}

func ec2DescribeNatGateways(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.nats), func(n *NATGateway) string { return n.ID }, c.form.list("NatGatewayId"),
		notFound("NatGatewayNotFound", "The Nat Gateway %s was not found"), natFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("natGatewaySet", "item", len(page), func(k int) {
		n := page[k]
		w.leaf("natGatewayId", n.ID)
		w.leaf("subnetId", n.SubnetID)
		w.leaf("vpcId", n.VPCID)
		w.leaf("state", n.State)
		w.leaf("connectivityType", n.ConnectivityType)
		w.time("createTime", n.CreateTime)
		w.list("natGatewayAddressSet", "item", 1, func(int) {
			w.opt("allocationId", n.AllocationID)
			w.leaf("networkInterfaceId", n.ENIID)
			w.leaf("privateIp", n.PrivateIP)
			w.opt("publicIp", n.PublicIP)
			w.bool("isPrimary", true)
			w.leaf("status", "succeeded")
		})
		w.ec2Tags(n.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

// ---- DescribeHosts ----

var hostFilters = filterSet[*Host]{
	fields: map[string]func(*Host) []string{
		"availability-zone": func(h *Host) []string { return one(h.AZ) },
		"instance-type":     func(h *Host) []string { return one(h.InstanceType) },
		"state":             func(h *Host) []string { return one(h.State) },
		"auto-placement":    func(h *Host) []string { return one("on") },
	},
	tags: func(h *Host) map[string]string { return h.Tags },
}

func ec2DescribeHosts(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.hosts), func(h *Host) string { return h.ID }, c.form.list("HostId"),
		notFound("InvalidHostID.NotFound", "The host ID '%s' does not exist"), hostFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("hostSet", "item", len(page), func(k int) {
		h := page[k]
		t := a.types[h.InstanceType]
		free := h.TotalVCPUs - a.hostUsedVCPUs(h)
		w.leaf("hostId", h.ID)
		w.leaf("autoPlacement", "on")
		w.leaf("availabilityZone", h.AZ)
		w.leaf("availabilityZoneId", azID(h.AZ))
		w.elem("availableCapacity", func() {
			w.list("availableInstanceCapacity", "item", 1, func(int) {
				if t.VCPUs > 0 {
					w.int("availableCapacity", int64(free/t.VCPUs))
					w.int("totalCapacity", int64(h.TotalVCPUs/t.VCPUs))
				}
				w.leaf("instanceType", h.InstanceType)
			})
			w.int("availableVCpus", int64(free))
		})
		w.elem("hostProperties", func() {
			w.int("cores", int64(h.TotalVCPUs/2))
			w.leaf("instanceType", h.InstanceType)
			w.leaf("instanceFamily", strings.SplitN(h.InstanceType, ".", 2)[0])
			w.int("sockets", int64(h.Sockets))
			w.int("totalVCpus", int64(h.TotalVCPUs))
		})
		w.list("instances", "item", len(h.Instances), func(p int) {
			w.leaf("instanceId", h.Instances[p])
			if i := a.instances[h.Instances[p]]; i != nil {
				w.leaf("instanceType", i.Type)
			}
			w.leaf("ownerId", a.ID)
		})
		w.leaf("state", h.State)
		w.time("allocationTime", h.AllocationTime)
		w.leaf("ownerId", a.ID)
		w.leaf("hostRecovery", "off")
		w.leaf("allowsMultipleInstanceTypes", "off")
		w.ec2Tags(h.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}
