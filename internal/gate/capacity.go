package gate

// The capacity section of the policy; its checks are capacity_ips.go and
// capacity_quotas.go.

import (
	"math"
	"regexp"
)

// defaultsCapacity fills in the capacity section's defaults.
func defaultsCapacity(p *Policy) {
	if p.Capacity.MaxQuotaUtilization == 0 {
		p.Capacity.MaxQuotaUtilization = 1
	}
	if p.Capacity.AWSNodeJob == "" {
		p.Capacity.AWSNodeJob = "aws-node"
	}
}

// validateCapacity checks the capacity section's values.
func validateCapacity(p *Policy, bad func(field, format string, args ...any)) {
	if p.Capacity.IPsNeeded < 0 {
		bad("capacity.ips_needed", "%d; want 0 (from the exporter) or more", p.Capacity.IPsNeeded)
	}
	if p.Capacity.ExtraIPs < 0 {
		bad("capacity.extra_ips", "%d; want 0 or more", p.Capacity.ExtraIPs)
	}
	if _, err := regexp.Compile("^(?:" + p.Capacity.AWSNodeJob + ")$"); err != nil {
		bad("capacity.aws_node_job", "bad regular expression %q: %v", p.Capacity.AWSNodeJob, err)
	}
	if u := p.Capacity.MaxQuotaUtilization; u <= 0 || u > 1 || math.IsNaN(u) {
		bad("capacity.max_quota_utilization", "%v; want a share in (0, 1]", u)
	}
}

// CapacityPolicy: subnet addresses and AWS quotas cover the replacement.
type CapacityPolicy struct {
	// IPs checks the free addresses of the node's zone (every zone without
	// a node) against the addresses a replacement takes at start.
	IPs *bool `yaml:"ips"`
	// IPsNeeded, when > 0, is the need instead of the largest
	// upgradeguard_aws_asg_surge_ips.
	IPsNeeded int `yaml:"ips_needed"`
	// ExtraIPs is a margin added to the need.
	ExtraIPs int `yaml:"extra_ips"`
	// AWSNodeJob is a regular expression for the job label of the VPC
	// CNI's aws-node targets (default "aws-node", the bundle's PodMonitor);
	// when the exporter sees VPC CNI nodes but none of these targets is up,
	// capacity/ips is UNKNOWN.
	AWSNodeJob string `yaml:"aws_node_job"`
	// Quotas checks usage + surge demand against every AWS quota's limit.
	Quotas *bool `yaml:"quotas"`
	// MaxQuotaUtilization is the share of a limit usage + surge may reach
	// (default 1).
	MaxQuotaUtilization float64 `yaml:"max_quota_utilization"`
	// AllowUnresolvedGroups accepts a surge demand that is a lower bound
	// (groups with unknown instance types); otherwise that is UNKNOWN.
	AllowUnresolvedGroups bool `yaml:"allow_unresolved_groups"`
}
