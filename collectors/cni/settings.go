package cni

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// The aws-node environment variables the collector reads, as ipamd reads
// them (aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go: envWarmENITarget,
// envWarmIPTarget, envMinimumIPTarget, envWarmPrefixTarget,
// envEnableIpv4PrefixDelegation, envCustomNetworkCfg).
const (
	EnvWarmENITarget    = "WARM_ENI_TARGET"
	EnvWarmIPTarget     = "WARM_IP_TARGET"
	EnvMinimumIPTarget  = "MINIMUM_IP_TARGET"
	EnvWarmPrefixTarget = "WARM_PREFIX_TARGET"
	EnvPrefixDelegation = "ENABLE_PREFIX_DELEGATION"
	EnvCustomNetworking = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"
	// EnvENIConfigLabelDef names the node label whose value is the node's
	// ENIConfig (aws/amazon-vpc-cni-k8s pkg/eniconfig/eniconfig.go
	// getEniConfigLabelDef; default k8s.amazonaws.com/eniConfig).
	EnvENIConfigLabelDef = "ENI_CONFIG_LABEL_DEF"
)

// Where a setting's value came from, the source label of
// upgradeguard_vpc_cni_setting.
const (
	SourceFlag       = "flag"       // an exporter flag, which overrides the cluster
	SourceDaemonSet  = "daemonset"  // the aws-node DaemonSet's environment
	SourceDefault    = "default"    // not set: ipamd's default
	SourceUnresolved = "unresolved" // set from a ConfigMap, Secret or field the exporter does not read: ipamd's default is assumed
)

// Settings are the VPC CNI settings that decide how many addresses, ENIs
// and prefixes a node takes, with ipamd's defaults: WARM_ENI_TARGET 1,
// WARM_PREFIX_TARGET 0, the IP targets 0 (unset), both modes off.
type Settings struct {
	WarmENITarget, WarmIPTarget, MinimumIPTarget, WarmPrefixTarget int
	PrefixDelegation, CustomNetworking                             bool
	// ENIConfigLabelDef is ENI_CONFIG_LABEL_DEF as set on aws-node ("" when
	// unset or unresolved).
	ENIConfigLabelDef string
	// Sources says where each setting came from, by environment variable name.
	Sources map[string]string
}

// Overrides are exporter flags that, when set, replace what the aws-node
// DaemonSet says (nil: not set).
type Overrides struct {
	WarmENITarget, WarmIPTarget, MinimumIPTarget, WarmPrefixTarget *int
	PrefixDelegation, CustomNetworking                             *bool
}

// Validate returns an error naming the first override below 0.
func (o Overrides) Validate() error {
	for _, v := range []struct {
		name string
		v    *int
	}{{EnvWarmENITarget, o.WarmENITarget}, {EnvWarmIPTarget, o.WarmIPTarget}, {EnvMinimumIPTarget, o.MinimumIPTarget}, {EnvWarmPrefixTarget, o.WarmPrefixTarget}} {
		if v.v != nil && *v.v < 0 {
			return fmt.Errorf("the override of %s is %d; want 0 or more", v.name, *v.v)
		}
	}
	return nil
}

// DefaultSettings are ipamd's defaults (pkg/ipamd/ipamd.go:
// defaultWarmENITarget 1, defaultWarmPrefixTarget 0, noWarmIPTarget and
// noMinimumIPTarget 0; UseCustomNetworkCfg and usePrefixDelegation false).
func DefaultSettings() Settings {
	s := Settings{WarmENITarget: 1, Sources: map[string]string{}}
	for _, n := range settingNames {
		s.Sources[n] = SourceDefault
	}
	return s
}

var settingNames = []string{EnvWarmENITarget, EnvWarmIPTarget, EnvMinimumIPTarget, EnvWarmPrefixTarget, EnvPrefixDelegation, EnvCustomNetworking}

// SettingsFrom reads the settings from the aws-node container's
// environment of ds (nil: no DaemonSet), then applies the overrides. It
// parses as ipamd does: integers with strconv.Atoi, where a negative or
// unparsable value means the default (getWarmENITarget,
// getWarmPrefixTarget, getWarmIPTarget, getMinimumIPTarget), booleans with
// strconv.ParseBool, false when unparsable (parseBoolEnvVar,
// utils.GetBoolAsStringEnvVar). The problems name each value that could not
// be used as written.
func SettingsFrom(ds *appsv1.DaemonSet, o Overrides) (Settings, []string) {
	s := DefaultSettings()
	var problems []string
	env := map[string]corev1.EnvVar{}
	if ds != nil {
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name == kube.AWSNodeContainer {
				for _, e := range c.Env {
					env[e.Name] = e // the last one wins, as in a container
				}
			}
		}
	}
	intVar := func(name string, dst *int, def int) {
		e, ok := env[name]
		switch {
		case !ok:
		case e.ValueFrom != nil:
			s.Sources[name] = SourceUnresolved
			problems = append(problems, fmt.Sprintf("%s comes from a reference the exporter does not read; assuming %d", name, def))
		default:
			s.Sources[name] = SourceDaemonSet
			v, err := strconv.Atoi(e.Value)
			if err != nil || v < 0 {
				problems = append(problems, fmt.Sprintf("%s=%q is not a number >= 0; ipamd then uses %d", name, e.Value, def))
				v = def
			}
			*dst = v
		}
	}
	boolVar := func(name string, dst *bool) {
		e, ok := env[name]
		switch {
		case !ok:
		case e.ValueFrom != nil:
			s.Sources[name] = SourceUnresolved
			problems = append(problems, fmt.Sprintf("%s comes from a reference the exporter does not read; assuming false", name))
		default:
			s.Sources[name] = SourceDaemonSet
			v, err := strconv.ParseBool(e.Value)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s=%q is not a boolean; ipamd then uses false", name, e.Value))
			}
			*dst = v
		}
	}
	intVar(EnvWarmENITarget, &s.WarmENITarget, 1)
	intVar(EnvWarmIPTarget, &s.WarmIPTarget, 0)
	intVar(EnvMinimumIPTarget, &s.MinimumIPTarget, 0)
	intVar(EnvWarmPrefixTarget, &s.WarmPrefixTarget, 0)
	boolVar(EnvPrefixDelegation, &s.PrefixDelegation)
	boolVar(EnvCustomNetworking, &s.CustomNetworking)
	if e, ok := env[EnvENIConfigLabelDef]; ok && e.ValueFrom == nil {
		s.ENIConfigLabelDef = e.Value
	}

	overrideInt := func(name string, dst *int, v *int) {
		if v != nil {
			*dst, s.Sources[name] = *v, SourceFlag
		}
	}
	overrideInt(EnvWarmENITarget, &s.WarmENITarget, o.WarmENITarget)
	overrideInt(EnvWarmIPTarget, &s.WarmIPTarget, o.WarmIPTarget)
	overrideInt(EnvMinimumIPTarget, &s.MinimumIPTarget, o.MinimumIPTarget)
	overrideInt(EnvWarmPrefixTarget, &s.WarmPrefixTarget, o.WarmPrefixTarget)
	if o.PrefixDelegation != nil {
		s.PrefixDelegation, s.Sources[EnvPrefixDelegation] = *o.PrefixDelegation, SourceFlag
	}
	if o.CustomNetworking != nil {
		s.CustomNetworking, s.Sources[EnvCustomNetworking] = *o.CustomNetworking, SourceFlag
	}
	return s, problems
}

// value returns a setting's value as a number (booleans 0 or 1).
func (s Settings) value(name string) float64 {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	switch name {
	case EnvWarmENITarget:
		return float64(s.WarmENITarget)
	case EnvWarmIPTarget:
		return float64(s.WarmIPTarget)
	case EnvMinimumIPTarget:
		return float64(s.MinimumIPTarget)
	case EnvWarmPrefixTarget:
		return float64(s.WarmPrefixTarget)
	case EnvPrefixDelegation:
		return b(s.PrefixDelegation)
	case EnvCustomNetworking:
		return b(s.CustomNetworking)
	}
	return 0
}

// AWSNodeDaemonSet returns the aws-node DaemonSet in the informer's store
// (kube.Informers.AWSNode), nil when there is none or no informer.
func AWSNodeDaemonSet(inf *kube.Informer) *appsv1.DaemonSet {
	if inf == nil {
		return nil
	}
	for _, obj := range inf.GetStore().List() {
		if d, ok := obj.(*appsv1.DaemonSet); ok && d.Namespace == kube.AWSNodeNamespace && d.Name == kube.AWSNodeName {
			return d
		}
	}
	return nil
}

// CurrentSettings returns the VPC CNI settings in force now: the aws-node
// DaemonSet's in the informer's store, with the overrides. It reads only
// the informer's cache.
func CurrentSettings(awsNode *kube.Informer, o Overrides) Settings {
	s, _ := SettingsFrom(AWSNodeDaemonSet(awsNode), o)
	return s
}

func (c *Collector) awsNode() *appsv1.DaemonSet { return AWSNodeDaemonSet(c.opts.AWSNode) }

// Settings returns the VPC CNI settings in force now (CurrentSettings).
func (c *Collector) Settings() Settings { return CurrentSettings(c.opts.AWSNode, c.opts.Overrides) }
