package awsfake

import (
	"slices"
	"strconv"
)

// The Auto Scaling calls around a rolling replacement: suspending and
// resuming processes, group tags, and the scaling activities (AWS query
// protocol, checked against autoscaling v1.80.0's serializers and
// deserializers).

func asSuspendProcesses(c *call) (any, *apiError) { return asProcesses(c, true) }
func asResumeProcesses(c *call) (any, *apiError)  { return asProcesses(c, false) }

func asProcesses(c *call, suspend bool) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.setProcesses(c.form.str("AutoScalingGroupName"), c.form.list("ScalingProcesses.member"), suspend); aerr != nil {
		return nil, aerr
	}
	return nil, nil
}

// tagParams reads Tags.member.N.{ResourceId,ResourceType,Key,Value,PropagateAtLaunch}.
type tagParam struct {
	group, key, value string
	propagate         bool
}

func tagParams(c *call) ([]tagParam, *apiError) {
	var out []tagParam
	for _, i := range c.form.indices("Tags.member") {
		p := "Tags.member." + strconv.Itoa(i) + "."
		t := tagParam{group: c.form.str(p + "ResourceId"), key: c.form.str(p + "Key"), value: c.form.str(p + "Value"), propagate: c.form.bool(p + "PropagateAtLaunch")}
		if rt := c.form.str(p + "ResourceType"); rt != "auto-scaling-group" {
			return nil, errf(400, "ValidationError", "Invalid resource type %q: only auto-scaling-group is supported", rt)
		}
		if t.key == "" {
			return nil, errf(400, "ValidationError", "1 validation error detected: Value null at 'tags.%d.member.key' failed to satisfy constraint: Member must not be null", i)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	return out, nil
}

func asCreateOrUpdateTags(c *call) (any, *apiError) {
	tags, aerr := tagParams(c)
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	for _, t := range tags {
		g := a.asgs[t.group]
		if g == nil {
			return nil, errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", t.group)
		}
		a.setTag(g, t.key, t.value, t.propagate)
	}
	return nil, nil
}

func asDeleteTags(c *call) (any, *apiError) {
	tags, aerr := tagParams(c)
	if aerr != nil {
		return nil, aerr
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	for _, t := range tags {
		if g := a.asgs[t.group]; g != nil {
			delete(g.Tags, t.key)
			delete(g.noPropagate, t.key)
		}
	}
	return nil, nil
}

// DescribeScalingActivities lists activities newest first, of one group or
// of all, or the ones named; MaxRecords at most 100 (default 100).
func asDescribeScalingActivities(c *call) (any, *apiError) {
	size, has, aerr := c.form.int("MaxRecords")
	if aerr != nil {
		return nil, aerr
	}
	if !has {
		size = 100
	}
	if size < 1 || size > 100 {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to 100", size)
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	var all []*Activity
	name := c.form.str("AutoScalingGroupName")
	for _, g := range a.asgs {
		if name == "" || g.Name == name {
			all = append(all, g.activities...)
		}
	}
	if ids := c.form.list("ActivityIds.member"); len(ids) > 0 {
		all = slices.DeleteFunc(all, func(x *Activity) bool { return !slices.Contains(ids, x.ID) })
	}
	byKey(all, (*Activity).key)
	page, next, aerr := paginate(all, (*Activity).key, c.form.str("NextToken"), size, asBadToken)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("Activities", "member", len(page), func(k int) { writeActivity(w, a, page[k]) })
	w.opt("NextToken", next)
	return w, nil
}

func writeActivity(w *xmlWriter, a *Account, x *Activity) {
	w.leaf("ActivityId", x.ID)
	w.leaf("AutoScalingGroupName", x.Group)
	if g := a.asgs[x.Group]; g != nil {
		w.leaf("AutoScalingGroupARN", g.ARN)
	}
	w.leaf("Description", x.Description)
	w.leaf("Cause", x.Cause)
	w.time("StartTime", x.StartTime)
	w.time("EndTime", x.EndTime)
	w.leaf("StatusCode", x.StatusCode)
	w.opt("StatusMessage", x.StatusMessage)
	w.int("Progress", int64(x.Progress))
	w.leaf("Details", x.Details)
}
