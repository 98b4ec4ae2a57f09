package awsquota

import (
	"strings"
	"unicode"
)

// qkey names one quota.
type qkey struct{ service, code string }

// Service codes of Service Quotas.
const (
	svcEC2         = "ec2"
	svcVPC         = "vpc"
	svcEBS         = "ebs"
	svcELB         = "elasticloadbalancing"
	svcAutoScaling = "autoscaling"
)

// vcpuClass is one instance class of the vCPU-based EC2 quotas. spot is
// empty where AWS has no spot quota for the class (HPC, High Memory).
type vcpuClass struct {
	name             string
	onDemand, spot   string
	onDemandN, spotN string
}

var (
	classStandard = &vcpuClass{"Standard", "L-1216C47A", "L-34B43A08",
		"Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"}
	classG   = &vcpuClass{"G and VT", "L-DB2E81BA", "L-3819A6DF", "Running On-Demand G and VT instances", "All G and VT Spot Instance Requests"}
	classP   = &vcpuClass{"P", "L-417A185B", "L-7212CCBC", "Running On-Demand P instances", "All P Spot Instance Requests"}
	classX   = &vcpuClass{"X", "L-7295265B", "L-E3A00192", "Running On-Demand X instances", "All X Spot Instance Requests"}
	classF   = &vcpuClass{"F", "L-74FC7D96", "L-88CF9481", "Running On-Demand F instances", "All F Spot Instance Requests"}
	classInf = &vcpuClass{"Inf", "L-1945791B", "L-B5D1601B", "Running On-Demand Inf instances", "All Inf Spot Instance Requests"}
	classDL  = &vcpuClass{"DL", "L-6E869C2A", "L-85EED4F7", "Running On-Demand DL instances", "All DL Spot Instance Requests"}
	classTrn = &vcpuClass{"Trn", "L-2C3B7624", "L-6B0D517C", "Running On-Demand Trn instances", "All Trn Spot Instance Requests"}
	classHPC = &vcpuClass{"HPC", "L-F7808C92", "", "Running On-Demand HPC instances", ""}
	classMem = &vcpuClass{"High Memory", "L-43DA4232", "", "Running On-Demand High Memory instances", ""}

	classes = []*vcpuClass{classStandard, classG, classP, classX, classF, classInf, classDL, classTrn, classHPC, classMem}

	// familyClass maps an instance family (the letters before the first
	// digit of the type's name) to its quota class, as Service Quotas
	// groups them.
	familyClass = map[string]*vcpuClass{
		"a": classStandard, "c": classStandard, "d": classStandard, "h": classStandard, "i": classStandard,
		"im": classStandard, "is": classStandard, "m": classStandard, "r": classStandard, "t": classStandard, "z": classStandard,
		"g": classG, "gr": classG, "vt": classG,
		"p": classP, "x": classX, "f": classF, "inf": classInf, "dl": classDL, "trn": classTrn, "hpc": classHPC,
		"u": classMem,
	}
)

// family returns the instance family of a type name: "inf1.xlarge" ->
// "inf", "u-6tb1.metal" -> "u", "hpc6a.48xlarge" -> "hpc".
func family(instanceType string) string {
	name, _, _ := strings.Cut(instanceType, ".")
	end := strings.IndexFunc(name, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		return name
	}
	return name[:end]
}

// classOf returns the quota class of an instance type, or nil for families
// no vCPU quota covers (mac, or a family newer than this table).
func classOf(instanceType string) *vcpuClass { return familyClass[family(instanceType)] }

// Codes of the other upgrade-critical quotas.
const (
	codeENIs            = "L-DF5E4CA3"
	codeEIPs            = "L-0263D0A3"
	codeSecurityGroups  = "L-E79EC296"
	codeLaunchTemplates = "L-FB451C26"
	codeNATPerZone      = "L-FE5A380F"
	codeASGs            = "L-CDE20ADC"
	codeLaunchConfigs   = "L-6B80B8FA"
	codeSnapshots       = "L-309BACF6"
	codeALBs            = "L-53DA6B97"
	codeNLBs            = "L-69A177A2"
	codeCLBs            = "L-E9E9831D"
	codeTargetGroups    = "L-B22855CB"
)

// volumeTypeCodes maps an EBS volume type to its storage quota (TiB).
var volumeTypeCodes = map[string]string{
	"gp3": "L-7A658B76", "gp2": "L-D18FCD1D", "io1": "L-FD252861",
	"io2": "L-09BD8365", "st1": "L-82ACEF56", "sc1": "L-17AF77E8",
}

// names are the quota names used until Service Quotas has told the real
// ones, so that a usage series has the same labels as its limit.
var names = map[qkey]string{
	{svcVPC, codeENIs}:                  "Network interfaces per Region",
	{svcEC2, codeEIPs}:                  "EC2-VPC Elastic IPs",
	{svcVPC, codeSecurityGroups}:        "VPC security groups per Region",
	{svcEC2, codeLaunchTemplates}:       "Launch templates",
	{svcVPC, codeNATPerZone}:            "NAT gateways per Availability Zone",
	{svcAutoScaling, codeASGs}:          "Auto Scaling groups per region",
	{svcAutoScaling, codeLaunchConfigs}: "Launch configurations per region",
	{svcEBS, codeSnapshots}:             "Snapshots per Region",
	{svcEBS, "L-7A658B76"}:              "Storage for General Purpose SSD (gp3) volumes, in TiB",
	{svcEBS, "L-D18FCD1D"}:              "Storage for General Purpose SSD (gp2) volumes, in TiB",
	{svcEBS, "L-FD252861"}:              "Storage for Provisioned IOPS SSD (io1) volumes, in TiB",
	{svcEBS, "L-09BD8365"}:              "Storage for Provisioned IOPS SSD (io2) volumes, in TiB",
	{svcEBS, "L-82ACEF56"}:              "Storage for Throughput Optimized HDD (st1) volumes, in TiB",
	{svcEBS, "L-17AF77E8"}:              "Storage for Cold HDD (sc1) volumes, in TiB",
	{svcELB, codeALBs}:                  "Application Load Balancers per Region",
	{svcELB, codeNLBs}:                  "Network Load Balancers per Region",
	{svcELB, codeCLBs}:                  "Classic Load Balancers per Region",
	{svcELB, codeTargetGroups}:          "Target Groups per Region",
}

func init() {
	for _, c := range classes {
		names[qkey{svcEC2, c.onDemand}] = c.onDemandN
		if c.spot != "" {
			names[qkey{svcEC2, c.spot}] = c.spotN
		}
	}
}

// tracked returns the quota codes of a service this package reports.
func tracked(service string) map[string]bool {
	out := map[string]bool{}
	for k := range names {
		if k.service == service {
			out[k.code] = true
		}
	}
	return out
}

var serviceCodes = []string{svcEC2, svcVPC, svcEBS, svcELB, svcAutoScaling}
