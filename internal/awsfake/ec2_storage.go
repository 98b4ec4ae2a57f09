package awsfake

import (
	"slices"
	"strconv"
)

// ---- DescribeVolumes ----

var volumeFilters = filterSet[*Volume]{
	fields: map[string]func(*Volume) []string{
		"volume-id":              func(v *Volume) []string { return one(v.ID) },
		"volume-type":            func(v *Volume) []string { return one(v.Type) },
		"status":                 func(v *Volume) []string { return one(v.State) },
		"size":                   func(v *Volume) []string { return one(strconv.Itoa(int(v.SizeGiB))) },
		"availability-zone":      func(v *Volume) []string { return one(v.AZ) },
		"attachment.instance-id": func(v *Volume) []string { return one(v.InstanceID) },
		"attachment.device":      func(v *Volume) []string { return one(v.Device) },
		"encrypted":              func(v *Volume) []string { return one(strconv.FormatBool(v.Encrypted)) },
		"snapshot-id":            func(v *Volume) []string { return one(v.SnapshotID) },
		"attachment.delete-on-termination": func(v *Volume) []string {
			return one(strconv.FormatBool(v.DeleteOnTermination))
		},
		"attachment.status": func(v *Volume) []string {
			if v.InstanceID != "" {
				return one("attached")
			}
			return nil
		},
	},
	tags: func(v *Volume) map[string]string { return v.Tags },
}

func ec2DescribeVolumes(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	page, next, aerr := describe(c, values(a.volumes), func(v *Volume) string { return v.ID }, c.form.list("VolumeId"),
		notFound("InvalidVolume.NotFound", "The volume '%s' does not exist."), volumeFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("volumeSet", "item", len(page), func(k int) {
		v := page[k]
		w.leaf("volumeId", v.ID)
		w.int("size", int64(v.SizeGiB))
		w.leaf("snapshotId", v.SnapshotID)
		w.leaf("availabilityZone", v.AZ)
		w.leaf("availabilityZoneId", azID(v.AZ))
		w.leaf("status", v.State)
		w.time("createTime", v.CreateTime)
		n := 0
		if v.InstanceID != "" {
			n = 1
		}
		w.list("attachmentSet", "item", n, func(int) {
			w.leaf("volumeId", v.ID)
			w.leaf("instanceId", v.InstanceID)
			w.leaf("device", v.Device)
			w.leaf("status", "attached")
			w.time("attachTime", v.CreateTime)
			w.bool("deleteOnTermination", v.DeleteOnTermination)
		})
		w.leaf("volumeType", v.Type)
		if v.Iops > 0 {
			w.int("iops", int64(v.Iops))
		} else if v.Type == "gp3" {
			w.int("iops", 3000)
		}
		if v.Type == "gp3" {
			w.int("throughput", 125)
		}
		w.bool("encrypted", v.Encrypted)
		w.bool("multiAttachEnabled", false)
		w.ec2Tags(v.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}

// ---- DescribeSnapshots ----

var snapshotFilters = filterSet[*Snapshot]{
	fields: map[string]func(*Snapshot) []string{
		"snapshot-id": func(s *Snapshot) []string { return one(s.ID) },
		"volume-id":   func(s *Snapshot) []string { return one(s.VolumeID) },
		"status":      func(s *Snapshot) []string { return one(s.State) },
		"owner-id":    func(s *Snapshot) []string { return one(s.OwnerID) },
		"owner-alias": func(s *Snapshot) []string { return one(s.OwnerAlias) },
		"volume-size": func(s *Snapshot) []string { return one(strconv.Itoa(int(s.SizeGiB))) },
		"description": func(s *Snapshot) []string { return one(s.Description) },
	},
	tags: func(s *Snapshot) map[string]string { return s.Tags },
}

func ec2DescribeSnapshots(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	all := values(a.snapshots)
	if owners := c.form.list("Owner"); len(owners) > 0 {
		all = slices.DeleteFunc(all, func(s *Snapshot) bool {
			for _, o := range owners {
				if o == "self" && s.OwnerID == a.ID || o == s.OwnerID || o != "" && o == s.OwnerAlias {
					return false
				}
			}
			return true
		})
	}
	page, next, aerr := describe(c, all, func(s *Snapshot) string { return s.ID }, c.form.list("SnapshotId"),
		notFound("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist."), snapshotFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("snapshotSet", "item", len(page), func(k int) {
		s := page[k]
		w.leaf("snapshotId", s.ID)
		w.leaf("volumeId", s.VolumeID)
		w.leaf("status", s.State)
		w.time("startTime", s.StartTime)
		w.leaf("progress", "100%")
		w.leaf("ownerId", s.OwnerID)
		w.opt("ownerAlias", s.OwnerAlias)
		w.int("volumeSize", int64(s.SizeGiB))
		w.leaf("description", s.Description)
		w.bool("encrypted", false)
		w.leaf("storageTier", "standard")
		w.ec2Tags(s.Tags)
	})
	w.opt("nextToken", next)
	return w, nil
}
