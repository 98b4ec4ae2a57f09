package awsfake

import (
	"fmt"
	"maps"
	"slices"
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
