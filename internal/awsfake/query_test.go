package awsfake

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestLoadBalancers(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	subs := []string{cl.subnets[0].ID, cl.subnets[1].ID}
	enisBefore := len(a.ENIs())
	var albs []LoadBalancer
	for i := range 4 {
		albs = append(albs, must[LoadBalancer](t)(a.AddLoadBalancer(LoadBalancerSpec{Name: "alb-" + string(rune('a'+i)), Subnets: subs})))
	}
	for i := range 3 {
		must[LoadBalancer](t)(a.AddLoadBalancer(LoadBalancerSpec{Name: "nlb-" + string(rune('a'+i)), Type: "network", Scheme: "internal", Subnets: subs}))
	}
	if n := len(a.ENIs()) - enisBefore; n != 14 {
		t.Errorf("7 load balancers in 2 subnets made %d ENIs, want 14", n)
	}
	for i := range 7 {
		lbs := []string{albs[i%4].ARN}
		must[TargetGroup](t)(a.AddTargetGroup(TargetGroup{Name: "tg-" + string(rune('a'+i)), LoadBalancerARNs: lbs}))
	}

	types := map[elbv2types.LoadBalancerTypeEnum]int{}
	pages := 0
	p := elbv2.NewDescribeLoadBalancersPaginator(c.elbv2, &elbv2.DescribeLoadBalancersInput{})
	for p.HasMorePages() {
		page := must[*elbv2.DescribeLoadBalancersOutput](t)(p.NextPage(ctx))
		pages++
		for _, lb := range page.LoadBalancers {
			types[lb.Type]++
			if len(lb.AvailabilityZones) != 2 || aws.ToString(lb.VpcId) != cl.subnets[0].VPCID || lb.State.Code != elbv2types.LoadBalancerStateEnumActive {
				t.Errorf("load balancer shape: %+v", lb)
			}
		}
	}
	if types["application"] != 4 || types["network"] != 3 || pages != 2 {
		t.Errorf("load balancers by type %v in %d pages", types, pages)
	}
	byName := must[*elbv2.DescribeLoadBalancersOutput](t)(c.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"nlb-b"}}))
	if len(byName.LoadBalancers) != 1 || byName.LoadBalancers[0].Scheme != elbv2types.LoadBalancerSchemeEnumInternal {
		t.Errorf("by name: %+v", byName.LoadBalancers)
	}
	_, err := c.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{"nope"}})
	if apiCode(err) != "LoadBalancerNotFound" {
		t.Errorf("unknown load balancer: %v", err)
	}

	var tgs int
	pt := elbv2.NewDescribeTargetGroupsPaginator(c.elbv2, &elbv2.DescribeTargetGroupsInput{})
	for pt.HasMorePages() {
		tgs += len(must[*elbv2.DescribeTargetGroupsOutput](t)(pt.NextPage(ctx)).TargetGroups)
	}
	if tgs != 7 {
		t.Errorf("%d target groups, want 7", tgs)
	}
	ofA := must[*elbv2.DescribeTargetGroupsOutput](t)(c.elbv2.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{LoadBalancerArn: aws.String(albs[0].ARN)}))
	if len(ofA.TargetGroups) != 2 || ofA.TargetGroups[0].LoadBalancerArns[0] != albs[0].ARN {
		t.Errorf("target groups of alb-a: %+v", ofA.TargetGroups)
	}
	_, err = c.elbv2.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{"nope"}})
	if apiCode(err) != "TargetGroupNotFound" {
		t.Errorf("unknown target group: %v", err)
	}

	// Classic load balancers: their own API version, same action name.
	for i := range 6 {
		must[ClassicLoadBalancer](t)(a.AddClassicLoadBalancer("clb-"+string(rune('a'+i)), subs[:1], cl.asg.Instances[:1]))
	}
	var clbs int
	pc := elb.NewDescribeLoadBalancersPaginator(c.elb, &elb.DescribeLoadBalancersInput{})
	for pc.HasMorePages() {
		for _, lb := range must[*elb.DescribeLoadBalancersOutput](t)(pc.NextPage(ctx)).LoadBalancerDescriptions {
			clbs++
			if len(lb.Instances) != 1 || len(lb.Subnets) != 1 || aws.ToString(lb.VPCId) == "" {
				t.Errorf("classic load balancer: %+v", lb)
			}
		}
	}
	if clbs != 6 {
		t.Errorf("%d classic load balancers, want 6", clbs)
	}
	if srv.Calls("elb:DescribeLoadBalancers") != 2 || srv.Calls("elbv2:DescribeLoadBalancers") != 4 || srv.Calls("DescribeLoadBalancers") != 6 {
		t.Errorf("calls: %v", srv.CallCounts())
	}
	_, err = c.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{"nope"}})
	if apiCode(err) != "LoadBalancerNotFound" {
		t.Errorf("unknown classic load balancer: %v", err)
	}

	// Deleting frees the ENIs again.
	for _, lb := range albs {
		if err := a.DeleteLoadBalancer(lb.Name); err != nil {
			t.Fatal(err)
		}
	}
	enis := must[*ec2.DescribeNetworkInterfacesOutput](t)(c.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{ec2Filter("interface-type", "network_load_balancer")}, MaxResults: aws.Int32(100),
	}))
	if len(enis.NetworkInterfaces) != 6 || len(a.ENIs())-enisBefore != 6+6 {
		t.Errorf("after deleting the ALBs: %d NLB ENIs, %d new ENIs", len(enis.NetworkInterfaces), len(a.ENIs())-enisBefore)
	}
}

func TestSTSAndAccounts(t *testing.T) {
	srv, c := start(t)
	id := must[*sts.GetCallerIdentityOutput](t)(c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))
	if aws.ToString(id.Account) != DefaultAccountID || aws.ToString(id.Arn) != "arn:aws:iam::"+DefaultAccountID+":user/awsfake" {
		t.Errorf("caller: %+v", id)
	}

	// A second account, reached through AssumeRole: calls signed with the
	// temporary credentials see that account's resources.
	other := srv.AddAccount("222233334444", "")
	must[Instance](t)(other.AddInstance(InstanceSpec{Type: "x1e.xlarge"}))
	must[Instance](t)(srv.Account().AddInstance(InstanceSpec{Type: "m5.large"}))
	role := "arn:aws:iam::222233334444:role/upgradeguard-reader"
	out := must[*sts.AssumeRoleOutput](t)(c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("ug")}))
	if out.Credentials == nil || aws.ToString(out.Credentials.AccessKeyId) == "" || out.Credentials.Expiration.Before(time.Now().Add(50*time.Minute)) ||
		aws.ToString(out.AssumedRoleUser.Arn) != "arn:aws:sts::222233334444:assumed-role/upgradeguard-reader/ug" {
		t.Errorf("AssumeRole: %+v %+v", out.Credentials, out.AssumedRoleUser)
	}
	cfg := srv.Config("eu-west-1")
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role))
	assumed := newClients(cfg)
	id = must[*sts.GetCallerIdentityOutput](t)(assumed.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))
	if aws.ToString(id.Account) != "222233334444" {
		t.Errorf("assumed caller account %s", aws.ToString(id.Account))
	}
	is, _ := listInstances(t, assumed.ec2, &ec2.DescribeInstancesInput{})
	if len(is) != 1 || is[0].InstanceType != "x1e.xlarge" {
		t.Errorf("the other account's instances: %v", instanceIDs(is))
	}

	_, err := c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::999999999999:role/x"), RoleSessionName: aws.String("ug")})
	if apiCode(err) != "AccessDenied" {
		t.Errorf("role in an unknown account: %v", err)
	}
	_, err = c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("not-an-arn"), RoleSessionName: aws.String("ug")})
	if apiCode(err) != "ValidationError" {
		t.Errorf("malformed role ARN: %v", err)
	}

	// A region with its own state; other regions keep the catch-all.
	west := srv.AddAccount(DefaultAccountID, "us-west-2")
	must[Instance](t)(west.AddInstance(InstanceSpec{Type: "c5.large"}))
	wc := newClients(srv.Config("us-west-2"))
	is, _ = listInstances(t, wc.ec2, &ec2.DescribeInstancesInput{})
	if len(is) != 1 || aws.ToString(is[0].Placement.AvailabilityZone) != "us-west-2a" {
		t.Errorf("us-west-2: %v", instanceIDs(is))
	}
	is, _ = listInstances(t, c.ec2, &ec2.DescribeInstancesInput{})
	if len(is) != 1 || is[0].InstanceType != "m5.large" {
		t.Errorf("us-east-1: %v", instanceIDs(is))
	}

	// Unknown credentials fail as each protocol does.
	bad := srv.ConfigFor("555555555555", region)
	bc := newClients(bad)
	_, err = bc.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if apiCode(err) != "AuthFailure" {
		t.Errorf("EC2 with an unknown account: %v", err)
	}
	_, err = bc.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if apiCode(err) != "InvalidClientTokenId" {
		t.Errorf("STS with an unknown account: %v", err)
	}
}
