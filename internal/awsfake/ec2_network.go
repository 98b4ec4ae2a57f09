package awsfake

import "strconv"

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
