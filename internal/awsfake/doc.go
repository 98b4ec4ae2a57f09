// Package awsfake is a fake AWS for tests and demos: a loopback HTTP server
// that speaks the real wire protocols of the operations upgradeguard calls,
// over consistent in-memory accounts, so the real aws-sdk-go-v2 clients work
// against it unchanged.
//
//	srv, err := awsfake.Start()
//	defer srv.Close()
//	acct := srv.Account()
//	sub, _ := acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: "us-east-1a"})
//	acct.AddInstance(awsfake.InstanceSpec{Type: "m5.large", Subnet: sub.ID})
//	ec2c := ec2.NewFromConfig(srv.Config("us-east-1"))
//
// # Routing
//
// One endpoint serves every service. Config sets aws.Config.BaseEndpoint,
// which every client made from it uses; the server tells the services apart
// the way their protocols differ: Service Quotas (AWS JSON 1.1) by its
// X-Amz-Target header, the others (EC2 query, AWS query) by the API Version
// of the form body: 2016-11-15 EC2, 2011-01-01 Auto Scaling, 2015-12-01
// ELBv2, 2012-06-01 ELB (classic), 2011-06-15 STS. ELBv2 and ELB share the
// action name DescribeLoadBalancers; the version keeps them apart.
//
// # Accounts, regions and credentials
//
// The account a request acts in comes from the access key id in its SigV4
// credential scope, the region from the same scope; signatures are not
// checked. AccessKeyFor(id) is an account's long-term key. STS AssumeRole
// hands out a temporary key bound to the role's account, which must have
// been registered with AddAccount. The default account answers for every
// region without an account of its own; AddAccount(id, region) gives a
// region its own state.
//
// # Pagination, faults, budgets
//
// Every paginated operation pages the way AWS does (NextToken/MaxResults on
// EC2 and Service Quotas, NextToken/MaxRecords on Auto Scaling,
// Marker/PageSize on ELB) with DefaultPageSize when the caller sets none
// (SetPageSize changes it). Tokens name the last item returned, so a
// listing never repeats or skips an item that lived through it. Fail
// injects errors and latency per operation, Calls counts requests per
// operation (retries included) for API-budget assertions.
//
// # What is simplified
//
// Only the describe calls upgradeguard needs plus the Auto Scaling actions
// a rolling replacement makes (capacity, terminations, suspending and
// resuming processes, group tags, scaling activities, warm pools,
// lifecycle hooks) exist.
// Pending/shutting-down durations, launch delays and launch retries are
// simulated with timers (zero by default: synchronous). Auto Scaling groups
// launch from one launch template or configuration (warm pools as
// warmpool.go describes; termination lifecycle hooks as
// scaling_lifecyclehooks.go describes, launch hooks stored only), place instances in the
// least-populated zone and scale
// in from the most populated one, oldest first. AZRebalance acts after any
// change that leaves a group at its desired capacity with zones more than
// one instance apart: it launches in the emptiest zone, then terminates the
// oldest instance of the fullest. Launches fail as EC2 refuses them
// (FailLaunches: no capacity in a zone, the vCPU limit; a full subnet) and
// each launch and termination is a scaling activity, failed ones with EC2's
// message. IPv4 prefix delegation (aligned /28 blocks, InsufficientCidrBlocks)
// and subnet CIDR reservations are modelled (prefixes.go); IPv6 addresses,
// the AMI's
// own root volume, security group rules and load balancer listeners are not
// modelled. Load balancer targets are (targets.go): ELBv2 instance targets
// healthy, draining for the deregistration delay, then unused
// (DescribeTargetHealth); classic load balancers' instances with connection
// draining (DescribeInstanceHealth); health checks are not simulated: an
// instance terminated while registered keeps receiving new connections for
// HealthCheckGrace, and the account records it (TrafficCuts). Nothing
// watches Kubernetes: a test plays the service controller that deregisters
// the instances of excluded nodes. Quota utilization reports show the usages set with
// SetQuotaUsage, not usage computed from the resources.
package awsfake
