package awsfake

import (
	"fmt"
	"slices"
	"strconv"
)

// ---- DescribeLaunchTemplates and DescribeLaunchTemplateVersions ----

var ltFilters = filterSet[*LaunchTemplate]{
	fields: map[string]func(*LaunchTemplate) []string{
		"launch-template-name": func(lt *LaunchTemplate) []string { return one(lt.Name) },
	},
	tags: func(lt *LaunchTemplate) map[string]string { return lt.Tags },
}

func ec2DescribeLaunchTemplates(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	ids := c.form.list("LaunchTemplateId")
	for _, name := range c.form.list("LaunchTemplateName") {
		lt := a.ltByName(name)
		if lt == nil {
			return nil, errf(400, "InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
		ids = append(ids, lt.ID)
	}
	page, next, aerr := describe(c, values(a.lts), func(lt *LaunchTemplate) string { return lt.ID }, ids,
		notFound("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist."), ltFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("launchTemplates", "item", len(page), func(k int) {
		lt := page[k]
		w.leaf("launchTemplateId", lt.ID)
		w.leaf("launchTemplateName", lt.Name)
		w.time("createTime", lt.CreateTime)
		w.leaf("createdBy", "arn:aws:iam::"+a.ID+":user/awsfake")
		w.int("defaultVersionNumber", lt.DefaultVersion)
		w.int("latestVersionNumber", lt.LatestVersion)
		w.ec2Tags(lt.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

type ltVersion struct {
	lt *LaunchTemplate
	v  *LaunchTemplateVersion
}

func (x ltVersion) key() string { return fmt.Sprintf("%s/%012d", x.lt.ID, x.v.Number) }

var ltVersionFilters = filterSet[ltVersion]{
	fields: map[string]func(ltVersion) []string{
		"instance-type": func(x ltVersion) []string { return one(x.v.Data.InstanceType) },
		"image-id":      func(x ltVersion) []string { return one(x.v.Data.ImageID) },
		"is-default-version": func(x ltVersion) []string {
			return one(strconv.FormatBool(x.v.Number == x.lt.DefaultVersion))
		},
	},
}

func ec2DescribeLaunchTemplateVersions(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	filters := c.form.ec2Filters()
	if aerr := ltVersionFilters.validate(filters, "InvalidParameterValue"); aerr != nil {
		return nil, aerr
	}
	var templates []*LaunchTemplate
	id, name := c.form.str("LaunchTemplateId"), c.form.str("LaunchTemplateName")
	switch {
	case id != "":
		lt := a.lts[id]
		if lt == nil {
			return nil, errf(400, "InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
		templates = []*LaunchTemplate{lt}
	case name != "":
		lt := a.ltByName(name)
		if lt == nil {
			return nil, errf(400, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
		}
		templates = []*LaunchTemplate{lt}
	default:
		templates = values(a.lts)
	}
	versions := c.form.list("LaunchTemplateVersion")
	if id == "" && name == "" {
		for _, v := range versions {
			if v != "$Latest" && v != "$Default" {
				return nil, errf(400, "InvalidParameterCombination", "Without a launch template, only the $Latest and $Default versions can be described.")
			}
		}
		if len(versions) == 0 {
			return nil, errf(400, "MissingParameter", "A launch template ID or name, or the $Latest or $Default version, must be specified.")
		}
	}
	minV, _, aerr := c.form.int("MinVersion")
	if aerr != nil {
		return nil, aerr
	}
	maxV, hasMax, aerr := c.form.int("MaxVersion")
	if aerr != nil {
		return nil, aerr
	}
	var all []ltVersion
	for _, lt := range templates {
		if len(versions) > 0 {
			for _, want := range versions {
				v, ok := lt.version(want)
				if !ok {
					return nil, errf(400, "InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s of %s", want, lt.ID)
				}
				all = append(all, ltVersion{lt, v})
			}
			continue
		}
		for i := range lt.Versions {
			v := &lt.Versions[i]
			if v.Number >= int64(minV) && (!hasMax || v.Number <= int64(maxV)) {
				all = append(all, ltVersion{lt, v})
			}
		}
	}
	var matched []ltVersion
	for _, x := range all {
		if ltVersionFilters.match(x, filters) {
			matched = append(matched, x)
		}
	}
	byKey(matched, ltVersion.key)
	matched = slices.CompactFunc(matched, func(p, q ltVersion) bool { return p.key() == q.key() })
	size, aerr := c.pageSize("MaxResults")
	if aerr != nil {
		return nil, aerr
	}
	page, next, aerr := paginate(matched, ltVersion.key, c.form.str("NextToken"), size, ec2BadToken)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("launchTemplateVersionSet", "item", len(page), func(k int) {
		x := page[k]
		w.leaf("launchTemplateId", x.lt.ID)
		w.leaf("launchTemplateName", x.lt.Name)
		w.int("versionNumber", x.v.Number)
		w.opt("versionDescription", x.v.Description)
		w.time("createTime", x.v.CreateTime)
		w.leaf("createdBy", "arn:aws:iam::"+a.ID+":user/awsfake")
		w.bool("defaultVersion", x.v.Number == x.lt.DefaultVersion)
		w.elem("launchTemplateData", func() { writeLTData(w, x.v.Data) })
	})
	w.opt("nextToken", next)
	return w, nil
}

func writeLTData(w *xmlWriter, d LaunchTemplateData) {
	w.opt("imageId", d.ImageID)
	w.opt("instanceType", d.InstanceType)
	if len(d.BlockDevices) > 0 {
		w.list("blockDeviceMappingSet", "item", len(d.BlockDevices), func(k int) {
			bd := d.BlockDevices[k]
			w.leaf("deviceName", bd.DeviceName)
			w.elem("ebs", func() {
				w.bool("deleteOnTermination", bd.DeleteOnTermination)
				if bd.Iops > 0 {
					w.int("iops", int64(bd.Iops))
				}
				w.int("volumeSize", int64(bd.SizeGiB))
				w.leaf("volumeType", bd.VolumeType)
			})
		})
	}
	if d.Spot {
		w.elem("instanceMarketOptions", func() { w.leaf("marketType", "spot") })
	}
	if len(d.SecurityGroupIDs) > 0 {
		w.strings("securityGroupIdSet", "item", d.SecurityGroupIDs)
	}
}
