package awsfake

// The default catalogue: instance types and service quotas a new Account
// starts with. The numbers are written from memory of AWS's documentation
// (the EC2 instance-type and ENI tables, the Service Quotas console) and are
// realistic rather than authoritative; tests that depend on one value should
// set it themselves with AddInstanceType or SetQuota.

// InstanceType is what DescribeInstanceTypes reports about one type.
type InstanceType struct {
	Name           string
	VCPUs          int32
	Cores          int32
	ThreadsPerCore int32
	MemoryMiB      int64
	// MaxENIs is NetworkInfo.MaximumNetworkInterfaces, over all cards.
	MaxENIs    int32
	IPv4PerENI int32
	IPv6PerENI int32
	// NetworkCards lists the cards of multi-card types; empty means one card,
	// index 0, holding MaxENIs.
	NetworkCards       []NetworkCard
	DefaultNetworkCard int32
	NetworkPerformance string
	Architectures      []string
	Hypervisor         string // nitro or xen; empty for bare metal
	BareMetal          bool
	Burstable          bool
	CurrentGeneration  bool
	Spot               bool // spot is among the supported usage classes
	GPUs               int32
	GPUName            string
	GPUManufacturer    string
}

// NetworkCard is one network card of an instance type.
type NetworkCard struct {
	Index       int32
	MaxENIs     int32
	Performance string
}

// cards returns the network cards, filling in the single default card.
func (t InstanceType) cards() []NetworkCard {
	if len(t.NetworkCards) > 0 {
		return t.NetworkCards
	}
	return []NetworkCard{{Index: 0, MaxENIs: t.MaxENIs, Performance: t.NetworkPerformance}}
}

func (t InstanceType) cardMaxENIs(index int32) int32 {
	for _, c := range t.cards() {
		if c.Index == index {
			return c.MaxENIs
		}
	}
	return 0
}

// itype builds a catalogue entry for the common shape: one card, two threads
// per core, x86_64 on Nitro, spot supported, current generation.
func itype(name string, vcpus int32, memMiB int64, enis, ips int32, perf string) InstanceType {
	return InstanceType{
		Name: name, VCPUs: vcpus, Cores: max(vcpus/2, 1), ThreadsPerCore: 2, MemoryMiB: memMiB,
		MaxENIs: enis, IPv4PerENI: ips, IPv6PerENI: ips, NetworkPerformance: perf,
		Architectures: []string{"x86_64"}, Hypervisor: "nitro", CurrentGeneration: true, Spot: true,
	}
}

func multiCard(t InstanceType, cards int32, perf string) InstanceType {
	t.NetworkCards = nil
	for i := range cards {
		t.NetworkCards = append(t.NetworkCards, NetworkCard{Index: i, MaxENIs: t.MaxENIs / cards, Performance: perf})
	}
	return t
}

func gpu(t InstanceType, n int32, name, maker string) InstanceType {
	t.GPUs, t.GPUName, t.GPUManufacturer = n, name, maker
	return t
}

func xen(t InstanceType) InstanceType    { t.Hypervisor = "xen"; return t }
func noSpot(t InstanceType) InstanceType { t.Spot = false; return t }

func burstable(t InstanceType) InstanceType {
	t.Burstable = true
	if t.VCPUs == 2 {
		t.Cores = 1
	}
	return t
}

func metal(t InstanceType) InstanceType {
	t.BareMetal, t.Hypervisor = true, ""
	return t
}

// DefaultInstanceTypes returns the catalogue every new Account knows: one or
// two sizes of each family the quota classes care about (Standard, G, P, X,
// F, Inf, DL, Trn, HPC, High Memory), with multi-card types among them.
func DefaultInstanceTypes() []InstanceType {
	return []InstanceType{
		burstable(itype("t3.micro", 2, 1024, 2, 2, "Up to 5 Gigabit")),
		burstable(itype("t3.medium", 2, 4096, 3, 6, "Up to 5 Gigabit")),
		burstable(itype("t3.large", 2, 8192, 3, 12, "Up to 5 Gigabit")),
		burstable(itype("t3.xlarge", 4, 16384, 4, 15, "Up to 5 Gigabit")),
		itype("m5.large", 2, 8192, 3, 10, "Up to 10 Gigabit"),
		itype("m5.xlarge", 4, 16384, 4, 15, "Up to 10 Gigabit"),
		itype("m5.2xlarge", 8, 32768, 4, 15, "Up to 10 Gigabit"),
		itype("m5.4xlarge", 16, 65536, 8, 30, "Up to 10 Gigabit"),
		itype("m5.24xlarge", 96, 393216, 15, 50, "25 Gigabit"),
		itype("m6i.large", 2, 8192, 3, 10, "Up to 12.5 Gigabit"),
		itype("m6i.xlarge", 4, 16384, 4, 15, "Up to 12.5 Gigabit"),
		itype("m6i.2xlarge", 8, 32768, 4, 15, "Up to 12.5 Gigabit"),
		itype("m6i.32xlarge", 128, 524288, 15, 50, "50 Gigabit"),
		itype("c5.large", 2, 4096, 3, 10, "Up to 10 Gigabit"),
		itype("c5.xlarge", 4, 8192, 4, 15, "Up to 10 Gigabit"),
		itype("c5.4xlarge", 16, 32768, 8, 30, "Up to 10 Gigabit"),
		itype("c5.18xlarge", 72, 147456, 15, 50, "25 Gigabit"),
		itype("r5.large", 2, 16384, 3, 10, "Up to 10 Gigabit"),
		itype("r5.xlarge", 4, 32768, 4, 15, "Up to 10 Gigabit"),
		itype("r5.4xlarge", 16, 131072, 8, 30, "Up to 10 Gigabit"),
		gpu(itype("g4dn.xlarge", 4, 16384, 3, 10, "Up to 25 Gigabit"), 1, "T4", "NVIDIA"),
		gpu(itype("g4dn.12xlarge", 48, 196608, 8, 30, "50 Gigabit"), 4, "T4", "NVIDIA"),
		gpu(xen(itype("p3.2xlarge", 8, 62464, 4, 15, "Up to 10 Gigabit")), 1, "V100", "NVIDIA"),
		gpu(xen(itype("p3.16xlarge", 64, 499712, 8, 30, "25 Gigabit")), 8, "V100", "NVIDIA"),
		gpu(multiCard(itype("p4d.24xlarge", 96, 1179648, 60, 50, "4x 100 Gigabit"), 4, "100 Gigabit"), 8, "A100", "NVIDIA"),
		itype("inf1.xlarge", 4, 8192, 4, 10, "Up to 25 Gigabit"),
		itype("inf1.24xlarge", 96, 196608, 11, 30, "100 Gigabit"),
		itype("trn1.2xlarge", 8, 32768, 4, 15, "Up to 12.5 Gigabit"),
		multiCard(itype("trn1.32xlarge", 128, 524288, 40, 50, "8x 100 Gigabit"), 8, "100 Gigabit"),
		xen(itype("x1e.xlarge", 4, 124928, 3, 10, "Up to 10 Gigabit")),
		xen(itype("x1e.32xlarge", 128, 3997696, 8, 30, "25 Gigabit")),
		xen(itype("f1.2xlarge", 8, 124928, 4, 15, "Up to 10 Gigabit")),
		multiCard(itype("dl1.24xlarge", 96, 786432, 60, 50, "4x 100 Gigabit"), 4, "100 Gigabit"),
		noSpot(multiCard(itype("hpc6a.48xlarge", 96, 393216, 2, 50, "100 Gigabit"), 2, "100 Gigabit")),
		noSpot(itype("u-6tb1.56xlarge", 224, 6291456, 15, 50, "100 Gigabit")),
		noSpot(metal(itype("u-6tb1.metal", 448, 6291456, 15, 50, "100 Gigabit"))),
	}
}

// Quota is one Service Quotas quota of an account and region.
type Quota struct {
	ServiceCode  string
	ServiceName  string
	QuotaCode    string
	QuotaName    string
	Value        float64 // the applied value, what ListServiceQuotas returns
	DefaultValue float64 // what ListAWSDefaultServiceQuotas returns
	// Applied says whether ListServiceQuotas returns the quota at all: AWS
	// leaves out quotas whose applied value it does not know.
	Applied     bool
	Unit        string
	GlobalQuota bool
	Adjustable  bool
	// Usage, when set, puts the quota into quota utilization reports.
	Usage *float64
}

var serviceNames = map[string]string{
	"ec2":                  "Amazon Elastic Compute Cloud (Amazon EC2)",
	"vpc":                  "Amazon Virtual Private Cloud (Amazon VPC)",
	"ebs":                  "Amazon Elastic Block Store (Amazon EBS)",
	"elasticloadbalancing": "Elastic Load Balancing (ELB)",
	"autoscaling":          "Amazon EC2 Auto Scaling",
}

func quota(service, code, name string, def, applied float64) Quota {
	return Quota{
		ServiceCode: service, ServiceName: serviceNames[service], QuotaCode: code, QuotaName: name,
		Value: applied, DefaultValue: def, Applied: true, Unit: "None", Adjustable: true,
	}
}

func withUsage(q Quota, u float64) Quota { q.Usage = &u; return q }

// DefaultQuotas returns the quotas every new Account starts with: the
// upgrade-critical ones with AWS's default values and applied
// values of a typical established account, and two VPC quotas with usage so
// a quota utilization report is not empty.
func DefaultQuotas() []Quota {
	return []Quota{
		quota("ec2", "L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5, 768),
		quota("ec2", "L-DB2E81BA", "Running On-Demand G and VT instances", 0, 64),
		quota("ec2", "L-417A185B", "Running On-Demand P instances", 0, 96),
		quota("ec2", "L-7295265B", "Running On-Demand X instances", 0, 128),
		quota("ec2", "L-74FC7D96", "Running On-Demand F instances", 0, 8),
		quota("ec2", "L-1945791B", "Running On-Demand Inf instances", 0, 96),
		quota("ec2", "L-6E869C2A", "Running On-Demand DL instances", 0, 96),
		quota("ec2", "L-2C3B7624", "Running On-Demand Trn instances", 0, 128),
		quota("ec2", "L-F7808C92", "Running On-Demand HPC instances", 0, 96),
		quota("ec2", "L-43DA4232", "Running On-Demand High Memory instances", 0, 448),
		quota("ec2", "L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5, 768),
		quota("ec2", "L-3819A6DF", "All G and VT Spot Instance Requests", 0, 64),
		quota("ec2", "L-7212CCBC", "All P Spot Instance Requests", 0, 96),
		quota("ec2", "L-E3A00192", "All X Spot Instance Requests", 0, 128),
		quota("ec2", "L-88CF9481", "All F Spot Instance Requests", 0, 8),
		quota("ec2", "L-B5D1601B", "All Inf Spot Instance Requests", 0, 96),
		quota("ec2", "L-85EED4F7", "All DL Spot Instance Requests", 0, 96),
		quota("ec2", "L-6B0D517C", "All Trn Spot Instance Requests", 0, 128),
		quota("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs", 5, 5),
		quota("ec2", "L-FB451C26", "Launch templates", 5000, 5000),
		quota("vpc", "L-DF5E4CA3", "Network interfaces per Region", 5000, 5000),
		quota("vpc", "L-E79EC296", "VPC security groups per Region", 2500, 2500),
		quota("vpc", "L-FE5A380F", "NAT gateways per Availability Zone", 5, 5),
		withUsage(quota("vpc", "L-F678F1CE", "VPCs per Region", 5, 5), 2),
		withUsage(quota("vpc", "L-A4707A72", "Internet gateways per Region", 5, 5), 2),
		quota("ebs", "L-7A658B76", "Storage for General Purpose SSD (gp3) volumes, in TiB", 50, 50),
		quota("ebs", "L-D18FCD1D", "Storage for General Purpose SSD (gp2) volumes, in TiB", 50, 50),
		quota("ebs", "L-FD252861", "Storage for Provisioned IOPS SSD (io1) volumes, in TiB", 50, 50),
		quota("ebs", "L-09BD8365", "Storage for Provisioned IOPS SSD (io2) volumes, in TiB", 20, 20),
		quota("ebs", "L-82ACEF56", "Storage for Throughput Optimized HDD (st1) volumes, in TiB", 50, 50),
		quota("ebs", "L-17AF77E8", "Storage for Cold HDD (sc1) volumes, in TiB", 50, 50),
		quota("ebs", "L-309BACF6", "Snapshots per Region", 100000, 100000),
		quota("elasticloadbalancing", "L-53DA6B97", "Application Load Balancers per Region", 50, 50),
		quota("elasticloadbalancing", "L-69A177A2", "Network Load Balancers per Region", 50, 50),
		quota("elasticloadbalancing", "L-E9E9831D", "Classic Load Balancers per Region", 20, 20),
		quota("elasticloadbalancing", "L-B22855CB", "Target Groups per Region", 3000, 3000),
		quota("autoscaling", "L-CDE20ADC", "Auto Scaling groups per region", 500, 500),
		quota("autoscaling", "L-6B80B8FA", "Launch configurations per region", 200, 200),
	}
}
