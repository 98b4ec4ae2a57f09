package awsfake

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// The fixtures of everything that is not a subnet, an ENI or an instance.

// ---- volumes and snapshots ----

// Volume is an EBS volume as DescribeVolumes reports it.
type Volume struct {
	ID                  string
	Type                string // gp2, gp3, io1, io2, st1, sc1, standard
	SizeGiB             int32
	Iops                int32
	AZ                  string
	State               string // in-use or available
	InstanceID          string
	Device              string
	DeleteOnTermination bool
	SnapshotID          string
	Encrypted           bool
	CreateTime          time.Time
	Tags                map[string]string
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Type    string // default gp3
	SizeGiB int32
	Iops    int32
	// AZ defaults to the instance's zone, or the region's zone "a".
	AZ string
	// Instance attaches the volume at Device.
	Instance            string
	Device              string
	DeleteOnTermination bool
	Tags                map[string]string
}

// AddVolume creates an EBS volume.
func (a *Account) AddVolume(spec VolumeSpec) (Volume, error) {
	a.lock()
	defer a.unlock()
	v, aerr := a.addVolume(spec)
	if aerr != nil {
		return Volume{}, aerr
	}
	out := *v
	out.Tags = maps.Clone(v.Tags)
	return out, nil
}

func (a *Account) addVolume(spec VolumeSpec) (*Volume, *apiError) {
	if spec.Type == "" {
		spec.Type = "gp3"
	}
	if spec.SizeGiB <= 0 {
		return nil, errf(400, "InvalidParameterValue", "The volume size is invalid: %d", spec.SizeGiB)
	}
	v := &Volume{
		ID: a.newID("vol"), Type: spec.Type, SizeGiB: spec.SizeGiB, Iops: spec.Iops, AZ: spec.AZ,
		State: "available", CreateTime: a.now(), Tags: maps.Clone(spec.Tags),
	}
	if spec.Instance != "" {
		inst := a.instances[spec.Instance]
		if inst == nil || inst.State == "terminated" {
			return nil, errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", spec.Instance)
		}
		if v.AZ == "" {
			v.AZ = inst.AZ
		}
		if v.AZ != inst.AZ {
			return nil, errf(400, "InvalidVolume.ZoneMismatch", "The volume is not in the same availability zone as instance %s", inst.ID)
		}
		dev := spec.Device
		if dev == "" {
			dev = fmt.Sprintf("/dev/xvd%c", 'a'+len(inst.Volumes))
		}
		v.InstanceID, v.Device, v.State, v.DeleteOnTermination = inst.ID, dev, "in-use", spec.DeleteOnTermination
		inst.Volumes = append(inst.Volumes, v.ID)
	}
	if v.AZ == "" {
		v.AZ = a.Region + "a"
	}
	a.volumes[v.ID] = v
	return v, nil
}

// Volumes returns every volume, sorted by id.
func (a *Account) Volumes() []Volume {
	a.lock()
	defer a.unlock()
	var out []Volume
	for _, id := range slices.Sorted(maps.Keys(a.volumes)) {
		v := *a.volumes[id]
		v.Tags = maps.Clone(v.Tags)
		out = append(out, v)
	}
	return out
}

// DeleteVolume deletes a volume, detaching it first.
func (a *Account) DeleteVolume(id string) error {
	a.lock()
	defer a.unlock()
	v := a.volumes[id]
	if v == nil {
		return errf(400, "InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	if inst := a.instances[v.InstanceID]; inst != nil {
		inst.Volumes = slices.DeleteFunc(inst.Volumes, func(x string) bool { return x == id })
	}
	delete(a.volumes, id)
	return nil
}

// Snapshot is an EBS snapshot as DescribeSnapshots reports it.
type Snapshot struct {
	ID          string
	VolumeID    string
	SizeGiB     int32
	OwnerID     string
	OwnerAlias  string
	State       string
	Description string
	StartTime   time.Time
	Tags        map[string]string
}

// SnapshotSpec describes a snapshot to create.
type SnapshotSpec struct {
	Volume  string
	SizeGiB int32 // defaults to the volume's size
	// Owner defaults to this account; "amazon" or another account id makes
	// a snapshot that only DescribeSnapshots without OwnerIds=self lists.
	Owner       string
	Description string
	Tags        map[string]string
}

// AddSnapshot creates a completed snapshot.
func (a *Account) AddSnapshot(spec SnapshotSpec) (Snapshot, error) {
	a.lock()
	defer a.unlock()
	size := spec.SizeGiB
	if v := a.volumes[spec.Volume]; v != nil && size == 0 {
		size = v.SizeGiB
	}
	if size <= 0 {
		return Snapshot{}, errf(400, "InvalidParameterValue", "snapshot %q needs a size or an existing volume", spec.Description)
	}
	s := &Snapshot{
		ID: a.newID("snap"), VolumeID: spec.Volume, SizeGiB: size, OwnerID: a.ID, State: "completed",
		Description: spec.Description, StartTime: a.now(), Tags: maps.Clone(spec.Tags),
	}
	switch {
	case spec.Owner == "amazon":
		s.OwnerID, s.OwnerAlias = "137112412989", "amazon"
	case spec.Owner != "":
		s.OwnerID = spec.Owner
	}
	a.snapshots[s.ID] = s
	out := *s
	out.Tags = maps.Clone(s.Tags)
	return out, nil
}

// DeleteSnapshot deletes a snapshot.
func (a *Account) DeleteSnapshot(id string) error {
	a.lock()
	defer a.unlock()
	if a.snapshots[id] == nil {
		return errf(400, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	delete(a.snapshots, id)
	return nil
}
