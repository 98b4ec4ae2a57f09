package awsfake

import (
	"strconv"
	"strings"
)

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
