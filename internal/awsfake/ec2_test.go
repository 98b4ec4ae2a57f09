package awsfake

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func ec2Filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

// listInstances pages through DescribeInstances with the SDK paginator and
// returns the instances and the number of pages.
func listInstances(t *testing.T, c *ec2.Client, in *ec2.DescribeInstancesInput) ([]types.Instance, int) {
	t.Helper()
	var out []types.Instance
	pages := 0
	p := ec2.NewDescribeInstancesPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Reservations {
			if len(aws.ToString(r.OwnerId)) != 12 {
				t.Errorf("reservation owner %q", aws.ToString(r.OwnerId))
			}
			out = append(out, r.Instances...)
		}
	}
	return out, pages
}

func instanceIDs(is []types.Instance) []string {
	var ids []string
	for _, i := range is {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	return ids
}

func TestDescribeInstancesPagesFiltersAndShapes(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	host := must[Host](t)(a.AddHost("m5.large", region+"a", 0, nil))
	spot := must[Instance](t)(a.AddInstance(InstanceSpec{Type: "c5.xlarge", Subnet: cl.subnets[1].ID, Lifecycle: "spot", Tags: map[string]string{"team": "batch"}}))
	dedicated := must[Instance](t)(a.AddInstance(InstanceSpec{Type: "m5.large", Subnet: cl.subnets[0].ID, HostID: host.ID}))
	gone := must[Instance](t)(a.AddInstance(InstanceSpec{Type: "p3.2xlarge", Subnet: cl.subnets[2].ID, State: "terminated"}))
	must[Instance](t)(a.AddInstance(InstanceSpec{Type: "trn1.2xlarge", AZ: region + "b", State: "stopped"}))
	for range 8 {
		must[Instance](t)(a.AddInstance(InstanceSpec{Type: "t3.medium", Subnet: cl.subnets[2].ID}))
	}
	want := a.Instances()
	if len(want) != 15 {
		t.Fatalf("fixture has %d instances, want 15", len(want))
	}

	got, pages := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{})
	if pages != 3 {
		t.Errorf("15 instances at the default page size of %d came in %d pages, want 3", DefaultPageSize, pages)
	}
	ids := instanceIDs(got)
	var wantIDs []string
	for _, i := range want {
		wantIDs = append(wantIDs, i.ID)
	}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("paged listing\n got %v\nwant %v", ids, wantIDs)
	}

	byID := map[string]types.Instance{}
	for _, i := range got {
		byID[aws.ToString(i.InstanceId)] = i
	}
	node := byID[cl.asg.Instances[0]]
	if node.InstanceType != "m5.large" || node.State.Name != types.InstanceStateNameRunning || aws.ToInt32(node.State.Code) != 16 {
		t.Errorf("ASG node: type %s state %s/%d", node.InstanceType, node.State.Name, aws.ToInt32(node.State.Code))
	}
	sub, _ := a.Subnet(aws.ToString(node.SubnetId))
	ip := netip.MustParseAddr(aws.ToString(node.PrivateIpAddress))
	if !netip.MustParsePrefix(sub.CIDR).Contains(ip) || aws.ToString(node.Placement.AvailabilityZone) != sub.AZ {
		t.Errorf("node %s at %s in %s is not inside its subnet %s (%s)", *node.InstanceId, ip, aws.ToString(node.Placement.AvailabilityZone), sub.CIDR, sub.AZ)
	}
	if len(node.NetworkInterfaces) != 1 || aws.ToString(node.NetworkInterfaces[0].PrivateIpAddress) != ip.String() ||
		aws.ToInt32(node.NetworkInterfaces[0].Attachment.DeviceIndex) != 0 {
		t.Errorf("node ENIs: %+v", node.NetworkInterfaces)
	}
	if len(node.BlockDeviceMappings) != 1 || aws.ToString(node.BlockDeviceMappings[0].DeviceName) != "/dev/xvda" {
		t.Errorf("node block devices: %+v", node.BlockDeviceMappings)
	}
	tags := map[string]string{}
	for _, tg := range node.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["aws:autoscaling:groupName"] != "demo-nodes" || tags["kubernetes.io/cluster/demo"] != "owned" || tags["aws:ec2launchtemplate:version"] != "1" {
		t.Errorf("node tags: %v", tags)
	}
	if byID[spot.ID].InstanceLifecycle != types.InstanceLifecycleTypeSpot {
		t.Errorf("spot instance lifecycle %q", byID[spot.ID].InstanceLifecycle)
	}
	if p := byID[dedicated.ID].Placement; p.Tenancy != types.TenancyHost || aws.ToString(p.HostId) != host.ID {
		t.Errorf("dedicated host placement: %s %s", p.Tenancy, aws.ToString(p.HostId))
	}
	if g := byID[gone.ID]; g.State.Name != types.InstanceStateNameTerminated || len(g.NetworkInterfaces) != 0 {
		t.Errorf("terminated instance: %s with %d ENIs", g.State.Name, len(g.NetworkInterfaces))
	}

	// Filters: state, tag, lifecycle; values ORed, filters ANDed.
	running, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		ec2Filter("instance-state-name", "pending", "running"),
	}})
	if len(running) != 13 {
		t.Errorf("pending+running: %d instances, want 13", len(running))
	}
	nodes, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		ec2Filter("tag:aws:autoscaling:groupName", "demo-nodes"),
		ec2Filter("instance-state-name", "running"),
	}})
	if !slices.Equal(instanceIDs(nodes), cl.asg.Instances) {
		t.Errorf("tag filter: %v, want %v", instanceIDs(nodes), cl.asg.Instances)
	}
	spots, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		ec2Filter("instance-lifecycle", "spot"), ec2Filter("tag-key", "team"),
	}})
	if !slices.Equal(instanceIDs(spots), []string{spot.ID}) {
		t.Errorf("spot filter: %v", instanceIDs(spots))
	}
	wild, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{Filters: []types.Filter{ec2Filter("instance-type", "t3.*", "p?.2xlarge")}})
	if len(wild) != 9 {
		t.Errorf("wildcard filter: %d instances, want 9", len(wild))
	}

	// InstanceIds: exact; an unknown id fails the call as in AWS.
	exact, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{InstanceIds: []string{spot.ID, gone.ID}})
	if len(exact) != 2 {
		t.Errorf("InstanceIds: %d instances, want 2", len(exact))
	}
	_, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0000000000000dead"}})
	if apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("unknown instance id: %v", err)
	}
	_, err = c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{spot.ID}, MaxResults: aws.Int32(5)})
	if apiCode(err) != "InvalidParameterCombination" {
		t.Errorf("InstanceIds with MaxResults: %v", err)
	}
	_, err = c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{ec2Filter("no-such-filter", "x")}})
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("unknown filter: %v", err)
	}
	_, err = c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{NextToken: aws.String("garbage")})
	if apiCode(err) != "InvalidPaginationToken" {
		t.Errorf("bad token: %v", err)
	}

	// MaxResults sets the page size; SetPageSize caps it.
	_, pages = listInstances(t, c.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)})
	if pages != 1 {
		t.Errorf("MaxResults 1000: %d pages", pages)
	}
	srv.SetPageSize(5, 4)
	_, pages = listInstances(t, c.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)})
	if pages != 4 {
		t.Errorf("MaxResults capped at 4: %d pages, want 4", pages)
	}
}

func TestDescribeInstancesConsistentWhileDeleting(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	var ids []string
	for range 12 {
		ids = append(ids, must[Instance](t)(a.AddInstance(InstanceSpec{Type: "m5.large"})).ID)
	}
	p := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{})
	first, err := p.NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Delete one already listed and one not yet listed: the rest come once.
	if err := a.DeleteInstance(ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteInstance(ids[7]); err != nil {
		t.Fatal(err)
	}
	seen := instanceIDs(first.Reservations[0].Instances)
	for _, r := range first.Reservations[1:] {
		seen = append(seen, instanceIDs(r.Instances)...)
	}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Reservations {
			seen = append(seen, instanceIDs(r.Instances)...)
		}
	}
	want := slices.Delete(slices.Clone(ids), 7, 8)
	if !slices.Equal(seen, want) {
		t.Errorf("listing across a deletion\n got %v\nwant %v", seen, want)
	}
}

func TestDescribeInstanceTypes(t *testing.T) {
	srv, c := start(t)
	var got []types.InstanceTypeInfo
	pages := 0
	p := ec2.NewDescribeInstanceTypesPaginator(c.ec2, &ec2.DescribeInstanceTypesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, page.InstanceTypes...)
	}
	if len(got) != len(DefaultInstanceTypes()) || pages < 2 {
		t.Fatalf("%d types in %d pages, want %d in several", len(got), pages, len(DefaultInstanceTypes()))
	}
	byName := map[types.InstanceType]types.InstanceTypeInfo{}
	for _, it := range got {
		if _, dup := byName[it.InstanceType]; dup {
			t.Errorf("%s listed twice", it.InstanceType)
		}
		byName[it.InstanceType] = it
	}
	m5 := byName["m5.large"]
	if aws.ToInt32(m5.VCpuInfo.DefaultVCpus) != 2 || aws.ToInt32(m5.NetworkInfo.MaximumNetworkInterfaces) != 3 ||
		aws.ToInt32(m5.NetworkInfo.Ipv4AddressesPerInterface) != 10 || aws.ToInt64(m5.MemoryInfo.SizeInMiB) != 8192 {
		t.Errorf("m5.large: %+v %+v", m5.VCpuInfo, m5.NetworkInfo)
	}
	trn := byName["trn1.32xlarge"].NetworkInfo
	if len(trn.NetworkCards) != 8 || aws.ToInt32(trn.DefaultNetworkCardIndex) != 0 ||
		aws.ToInt32(trn.NetworkCards[0].MaximumNetworkInterfaces) != 5 || aws.ToInt32(trn.MaximumNetworkInterfaces) != 40 {
		t.Errorf("trn1.32xlarge network: %d cards, default %d", len(trn.NetworkCards), aws.ToInt32(trn.DefaultNetworkCardIndex))
	}
	if g := byName["g4dn.xlarge"].GpuInfo; g == nil || aws.ToInt32(g.Gpus[0].Count) != 1 {
		t.Errorf("g4dn.xlarge GPUs: %+v", g)
	}
	if !slices.Contains(byName["m5.large"].SupportedUsageClasses, types.UsageClassTypeSpot) ||
		slices.Contains(byName["u-6tb1.metal"].SupportedUsageClasses, types.UsageClassTypeSpot) || !aws.ToBool(byName["u-6tb1.metal"].BareMetal) {
		t.Errorf("usage classes / bare metal wrong")
	}

	out, err := c.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"p3.2xlarge", "inf1.xlarge"}})
	if err != nil || len(out.InstanceTypes) != 2 || out.InstanceTypes[0].InstanceType != "inf1.xlarge" {
		t.Errorf("by name: %v %+v", err, out)
	}
	_, err = c.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"m99.huge"}})
	if apiCode(err) != "InvalidInstanceType" {
		t.Errorf("unknown type: %v", err)
	}
	srv.Account().AddInstanceType(InstanceType{Name: "m99.huge", VCPUs: 1024, MaxENIs: 1, IPv4PerENI: 1})
	out, err = c.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{Filters: []types.Filter{ec2Filter("vcpu-info.default-vcpus", "1024")}})
	if err != nil || len(out.InstanceTypes) != 1 {
		t.Errorf("added type by filter: %v %d", err, len(out.InstanceTypes))
	}
}

func TestSubnetsAndENIsStayConsistent(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	s0 := cl.subnets[0].ID
	if cl.subnets[0].UsableIPs != 251 {
		t.Fatalf("a /24 has %d usable addresses, want 251", cl.subnets[0].UsableIPs)
	}
	node := cl.asg.Instances[0]
	inst, _ := a.Instance(node)
	cni := must[ENI](t)(a.AddENI(ENISpec{Subnet: inst.SubnetID, Instance: node, SecondaryIPs: 9, Description: "aws-K8S-" + node}))
	if cni.DeviceIndex != 1 || len(cni.PrivateIPs) != 10 {
		t.Errorf("CNI ENI: device %d with %d IPs", cni.DeviceIndex, len(cni.PrivateIPs))
	}
	// m5.large: 3 ENIs of 10 addresses.
	must[ENI](t)(a.AddENI(ENISpec{Subnet: inst.SubnetID, Instance: node}))
	if _, err := a.AddENI(ENISpec{Subnet: inst.SubnetID, Instance: node}); apiCode(err) != "AttachmentLimitExceeded" {
		t.Errorf("a 4th ENI on m5.large: %v", err)
	}
	if _, err := a.AddENI(ENISpec{Subnet: inst.SubnetID, SecondaryIPs: 300}); apiCode(err) != "InsufficientFreeAddressesInSubnet" {
		t.Errorf("301 addresses in a /24: %v", err)
	}

	subnets := map[string]types.Subnet{}
	p := ec2.NewDescribeSubnetsPaginator(c.ec2, &ec2.DescribeSubnetsInput{Filters: []types.Filter{ec2Filter("tag:kubernetes.io/cluster/demo", "shared")}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Subnets {
			subnets[aws.ToString(s.SubnetId)] = s
		}
	}
	if len(subnets) != 3 {
		t.Fatalf("%d cluster subnets", len(subnets))
	}
	// The node's subnet holds its primary address and the 11 of its CNI ENIs.
	var used int
	for _, e := range a.ENIs() {
		if e.SubnetID == inst.SubnetID {
			used += len(e.PrivateIPs)
		}
	}
	if got := aws.ToInt32(subnets[inst.SubnetID].AvailableIpAddressCount); int(got) != 251-used || used != 12 {
		t.Errorf("subnet %s: %d available with %d used, want %d", inst.SubnetID, got, used, 251-used)
	}
	if s := subnets[s0]; aws.ToString(s.CidrBlock) != "10.0.1.0/24" || aws.ToString(s.AvailabilityZone) != region+"a" || aws.ToString(s.VpcId) == "" {
		t.Errorf("subnet shape: %+v", s)
	}

	var enis []types.NetworkInterface
	pe := ec2.NewDescribeNetworkInterfacesPaginator(c.ec2, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{ec2Filter("attachment.instance-id", node)}})
	for pe.HasMorePages() {
		page, err := pe.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		enis = append(enis, page.NetworkInterfaces...)
	}
	if len(enis) != 3 || len(enis[1].PrivateIpAddresses) != 10 || aws.ToString(enis[1].Attachment.InstanceId) != node {
		t.Errorf("node ENIs: %d", len(enis))
	}

	// Terminating the node frees all 12 addresses.
	if err := a.TerminateInstance(node); err != nil {
		t.Fatal(err)
	}
	after, _ := a.Subnet(inst.SubnetID)
	if after.AvailableIPs < 251-1 {
		t.Errorf("after terminating the node, %d available", after.AvailableIPs)
	}
	_, err := c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-00000000000000000"}})
	if apiCode(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("unknown subnet: %v", err)
	}
}

func TestOtherEC2Describes(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	node := cl.asg.Instances[0]

	// Addresses: one page, whatever the page size.
	for range 7 {
		must[Address](t)(a.AddAddress("", nil))
	}
	eip := must[Address](t)(a.AddAddress(node, map[string]string{"role": "egress"}))
	nat := must[NATGateway](t)(a.AddNATGateway(cl.subnets[0].ID, false, map[string]string{"Name": "nat-a"}))
	must[NATGateway](t)(a.AddNATGateway(cl.subnets[1].ID, true, nil))
	addrs := must[*ec2.DescribeAddressesOutput](t)(c.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{}))
	if len(addrs.Addresses) != 9 {
		t.Errorf("%d addresses, want 9 (7 + 1 + the public NAT's)", len(addrs.Addresses))
	}
	addrs = must[*ec2.DescribeAddressesOutput](t)(c.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{ec2Filter("instance-id", node)}}))
	if len(addrs.Addresses) != 1 || aws.ToString(addrs.Addresses[0].AllocationId) != eip.AllocationID || aws.ToString(addrs.Addresses[0].NetworkInterfaceId) == "" {
		t.Errorf("address of the node: %+v", addrs.Addresses)
	}

	// Security groups: the VPC's default plus ten, over pages.
	for i := range 10 {
		must[SecurityGroup](t)(a.AddSecurityGroup(cl.subnets[0].VPCID, "sg"+string(rune('a'+i)), nil))
	}
	var sgs int
	ps := ec2.NewDescribeSecurityGroupsPaginator(c.ec2, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{ec2Filter("vpc-id", cl.subnets[0].VPCID)}})
	for ps.HasMorePages() {
		sgs += len(must[*ec2.DescribeSecurityGroupsOutput](t)(ps.NextPage(ctx)).SecurityGroups)
	}
	if sgs != 11 {
		t.Errorf("%d security groups, want 11", sgs)
	}

	// Volumes: the three node volumes plus fixtures.
	must[Volume](t)(a.AddVolume(VolumeSpec{Type: "io2", SizeGiB: 500, Iops: 8000}))
	must[Volume](t)(a.AddVolume(VolumeSpec{Type: "gp2", SizeGiB: 100, Instance: node}))
	sizes := map[types.VolumeType]int32{}
	pv := ec2.NewDescribeVolumesPaginator(c.ec2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(2)})
	for pv.HasMorePages() {
		for _, v := range must[*ec2.DescribeVolumesOutput](t)(pv.NextPage(ctx)).Volumes {
			sizes[v.VolumeType] += aws.ToInt32(v.Size)
		}
	}
	if sizes["gp3"] != 60 || sizes["io2"] != 500 || sizes["gp2"] != 100 {
		t.Errorf("volume GiB per type: %v", sizes)
	}

	// Snapshots: OwnerIds=self leaves out the ones others own.
	vol := a.Volumes()[0]
	for range 6 {
		must[Snapshot](t)(a.AddSnapshot(SnapshotSpec{Volume: vol.ID}))
	}
	must[Snapshot](t)(a.AddSnapshot(SnapshotSpec{SizeGiB: 8, Owner: "amazon"}))
	count := func(in *ec2.DescribeSnapshotsInput) int {
		n := 0
		p := ec2.NewDescribeSnapshotsPaginator(c.ec2, in)
		for p.HasMorePages() {
			n += len(must[*ec2.DescribeSnapshotsOutput](t)(p.NextPage(ctx)).Snapshots)
		}
		return n
	}
	if mine, all := count(&ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}), count(&ec2.DescribeSnapshotsInput{}); mine != 6 || all != 7 {
		t.Errorf("snapshots: %d self, %d all; want 6 and 7", mine, all)
	}

	// Launch templates and their versions.
	for i := range 5 {
		must[LaunchTemplate](t)(a.AddLaunchTemplate("lt-extra-"+string(rune('a'+i)), LaunchTemplateData{InstanceType: "c5.large"}, nil))
	}
	v2 := must[int64](t)(a.AddLaunchTemplateVersion("demo-nodes", LaunchTemplateData{
		InstanceType: "m6i.xlarge", Spot: true,
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeType: "gp3", SizeGiB: 50}, {DeviceName: "/dev/xvdb", VolumeType: "io1", SizeGiB: 100, Iops: 3000}},
	}, false))
	var lts int
	pl := ec2.NewDescribeLaunchTemplatesPaginator(c.ec2, &ec2.DescribeLaunchTemplatesInput{})
	for pl.HasMorePages() {
		lts += len(must[*ec2.DescribeLaunchTemplatesOutput](t)(pl.NextPage(ctx)).LaunchTemplates)
	}
	if lts != 6 {
		t.Errorf("%d launch templates, want 6", lts)
	}
	ltv := must[*ec2.DescribeLaunchTemplateVersionsOutput](t)(c.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: aws.String("demo-nodes"), Versions: []string{"$Latest"},
	}))
	if len(ltv.LaunchTemplateVersions) != 1 {
		t.Fatalf("$Latest: %d versions", len(ltv.LaunchTemplateVersions))
	}
	d := ltv.LaunchTemplateVersions[0]
	if aws.ToInt64(d.VersionNumber) != v2 || d.LaunchTemplateData.InstanceType != "m6i.xlarge" || len(d.LaunchTemplateData.BlockDeviceMappings) != 2 ||
		aws.ToInt32(d.LaunchTemplateData.BlockDeviceMappings[1].Ebs.Iops) != 3000 || d.LaunchTemplateData.InstanceMarketOptions.MarketType != types.MarketTypeSpot {
		t.Errorf("launch template version data: %+v", d.LaunchTemplateData)
	}
	var defaults []string
	pd := ec2.NewDescribeLaunchTemplateVersionsPaginator(c.ec2, &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{"$Default"}})
	for pd.HasMorePages() {
		for _, v := range must[*ec2.DescribeLaunchTemplateVersionsOutput](t)(pd.NextPage(ctx)).LaunchTemplateVersions {
			defaults = append(defaults, string(v.LaunchTemplateData.InstanceType))
		}
	}
	if len(defaults) != 6 || defaults[0] != "m5.large" {
		t.Errorf("$Default of every template: %v", defaults)
	}
	_, err := c.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}})
	if apiCode(err) != "InvalidLaunchTemplateName.NotFoundException" {
		t.Errorf("unknown template: %v", err)
	}

	// NAT gateways and dedicated hosts.
	nats := must[*ec2.DescribeNatGatewaysOutput](t)(c.ec2.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{}))
	if len(nats.NatGateways) != 2 || aws.ToString(nats.NatGateways[0].NatGatewayId) != nat.ID ||
		aws.ToString(nats.NatGateways[0].NatGatewayAddresses[0].PublicIp) == "" || nats.NatGateways[1].ConnectivityType != types.ConnectivityTypePrivate {
		t.Errorf("NAT gateways: %+v", nats.NatGateways)
	}
	h := must[Host](t)(a.AddHost("c5.large", region+"b", 72, nil))
	must[Instance](t)(a.AddInstance(InstanceSpec{Type: "c5.large", AZ: region + "b", Tenancy: "host"}))
	hosts := must[*ec2.DescribeHostsOutput](t)(c.ec2.DescribeHosts(ctx, &ec2.DescribeHostsInput{HostIds: []string{h.ID}}))
	if len(hosts.Hosts) != 1 || len(hosts.Hosts[0].Instances) != 1 || aws.ToInt32(hosts.Hosts[0].AvailableCapacity.AvailableVCpus) != 70 ||
		aws.ToInt32(hosts.Hosts[0].HostProperties.TotalVCpus) != 72 {
		t.Errorf("host: %+v", hosts.Hosts)
	}
}
