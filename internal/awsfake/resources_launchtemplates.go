package awsfake

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ---- launch templates and configurations ----

// LaunchTemplate is an EC2 launch template with its versions.
type LaunchTemplate struct {
	ID             string
	Name           string
	DefaultVersion int64
	LatestVersion  int64
	CreateTime     time.Time
	Tags           map[string]string
	Versions       []LaunchTemplateVersion
}

// LaunchTemplateVersion is one version of a launch template.
type LaunchTemplateVersion struct {
	Number      int64
	Description string
	CreateTime  time.Time
	Data        LaunchTemplateData
}

// LaunchTemplateData is the part of a launch template's data an instance
// launch uses. The AMI's own root volume is not modelled: list every volume
// an instance should get in BlockDevices.
type LaunchTemplateData struct {
	InstanceType     string
	ImageID          string
	Spot             bool // InstanceMarketOptions.MarketType spot
	BlockDevices     []BlockDevice
	SecurityGroupIDs []string
}

// BlockDevice is a block device mapping of an EBS volume.
type BlockDevice struct {
	DeviceName          string
	VolumeType          string
	SizeGiB             int32
	Iops                int32
	DeleteOnTermination bool
}

func (d LaunchTemplateData) clone() LaunchTemplateData {
	d.BlockDevices = slices.Clone(d.BlockDevices)
	d.SecurityGroupIDs = slices.Clone(d.SecurityGroupIDs)
	return d
}

func (lt *LaunchTemplate) clone() LaunchTemplate {
	out := *lt
	out.Tags = maps.Clone(lt.Tags)
	out.Versions = make([]LaunchTemplateVersion, len(lt.Versions))
	for i, v := range lt.Versions {
		v.Data = v.Data.clone()
		out.Versions[i] = v
	}
	return out
}

// version resolves "$Default", "$Latest" or a number.
func (lt *LaunchTemplate) version(v string) (*LaunchTemplateVersion, bool) {
	var n int64
	switch v {
	case "", "$Default":
		n = lt.DefaultVersion
	case "$Latest":
		n = lt.LatestVersion
	default:
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
			return nil, false
		}
	}
	for i := range lt.Versions {
		if lt.Versions[i].Number == n {
			return &lt.Versions[i], true
		}
	}
	return nil, false
}

// AddLaunchTemplate creates a launch template whose version 1 holds data.
func (a *Account) AddLaunchTemplate(name string, data LaunchTemplateData, tags map[string]string) (LaunchTemplate, error) {
	a.lock()
	defer a.unlock()
	if a.ltByName(name) != nil {
		return LaunchTemplate{}, errf(400, "InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	if _, ok := a.types[data.InstanceType]; data.InstanceType != "" && !ok {
		return LaunchTemplate{}, errf(400, "InvalidParameterValue", "Invalid value '%s' for InstanceType.", data.InstanceType)
	}
	now := a.now()
	lt := &LaunchTemplate{
		ID: a.newID("lt"), Name: name, DefaultVersion: 1, LatestVersion: 1, CreateTime: now, Tags: maps.Clone(tags),
		Versions: []LaunchTemplateVersion{{Number: 1, CreateTime: now, Data: data.clone()}},
	}
	a.lts[lt.ID] = lt
	return lt.clone(), nil
}

// AddLaunchTemplateVersion adds a version to the template named or with id
// idOrName and returns its number; makeDefault also makes it the default.
func (a *Account) AddLaunchTemplateVersion(idOrName string, data LaunchTemplateData, makeDefault bool) (int64, error) {
	a.lock()
	defer a.unlock()
	lt := a.lts[idOrName]
	if lt == nil {
		lt = a.ltByName(idOrName)
	}
	if lt == nil {
		return 0, errf(400, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", idOrName)
	}
	lt.LatestVersion++
	lt.Versions = append(lt.Versions, LaunchTemplateVersion{Number: lt.LatestVersion, CreateTime: a.now(), Data: data.clone()})
	if makeDefault {
		lt.DefaultVersion = lt.LatestVersion
	}
	return lt.LatestVersion, nil
}

func (a *Account) ltByName(name string) *LaunchTemplate {
	for _, lt := range a.lts {
		if lt.Name == name {
			return lt
		}
	}
	return nil
}

// DeleteLaunchTemplate deletes a launch template by id or name.
func (a *Account) DeleteLaunchTemplate(idOrName string) error {
	a.lock()
	defer a.unlock()
	lt := a.lts[idOrName]
	if lt == nil {
		lt = a.ltByName(idOrName)
	}
	if lt == nil {
		return errf(400, "InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", idOrName)
	}
	delete(a.lts, lt.ID)
	return nil
}

// LaunchConfiguration is an Auto Scaling launch configuration.
type LaunchConfiguration struct {
	Name         string
	ARN          string
	InstanceType string
	ImageID      string
	SpotPrice    string // set for spot
	Tenancy      string
	BlockDevices []BlockDevice
	CreatedTime  time.Time
}

// AddLaunchConfiguration creates a launch configuration; ARN and
// CreatedTime are filled in.
func (a *Account) AddLaunchConfiguration(lc LaunchConfiguration) (LaunchConfiguration, error) {
	a.lock()
	defer a.unlock()
	if a.lcs[lc.Name] != nil {
		return LaunchConfiguration{}, errf(400, "AlreadyExists", "Launch Configuration by this name already exists - A launch configuration already exists with the name %s", lc.Name)
	}
	if _, ok := a.types[lc.InstanceType]; !ok {
		return LaunchConfiguration{}, errf(400, "ValidationError", "Invalid instance type %s", lc.InstanceType)
	}
	lc.ARN = a.arn("autoscaling", fmt.Sprintf("launchConfiguration:%s:launchConfigurationName/%s", uuidish(a.newID("lc")), lc.Name))
	lc.CreatedTime = a.now()
	if lc.ImageID == "" {
		lc.ImageID = "ami-0fa4e0f1ce0f1ce00"
	}
	lc.BlockDevices = slices.Clone(lc.BlockDevices)
	stored := lc
	a.lcs[lc.Name] = &stored
	return lc, nil
}

// DeleteLaunchConfiguration deletes a launch configuration.
func (a *Account) DeleteLaunchConfiguration(name string) error {
	a.lock()
	defer a.unlock()
	if a.lcs[name] == nil {
		return errf(400, "ValidationError", "Launch configuration name not found - %s", name)
	}
	delete(a.lcs, name)
	return nil
}

// uuidish turns an id into a UUID-shaped string for ARNs that carry one.
func uuidish(id string) string {
	_, hex, _ := strings.Cut(id, "-")
	hex = fmt.Sprintf("%032s", hex)
	return hex[0:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:32]
}
