package awsfake

import (
	"maps"
	"slices"
)

// ---- quotas ----

func quotaKey(service, code string) string { return service + "/" + code }

// SetQuota sets a quota's applied value (what ListServiceQuotas returns),
// creating the quota, with that value as its default too, if it is new.
func (a *Account) SetQuota(service, code, name string, value float64) {
	a.lock()
	defer a.unlock()
	q := a.quota(service, code, name, value)
	q.Value, q.Applied = value, true
}

// SetDefaultQuota sets a quota's AWS default value (what
// ListAWSDefaultServiceQuotas returns); a new quota is default-only.
func (a *Account) SetDefaultQuota(service, code, name string, value float64) {
	a.lock()
	defer a.unlock()
	_, existed := a.quotas[quotaKey(service, code)]
	q := a.quota(service, code, name, value)
	q.DefaultValue = value
	if !existed {
		q.Applied = false
	}
}

func (a *Account) quota(service, code, name string, value float64) *Quota {
	q := a.quotas[quotaKey(service, code)]
	if q == nil {
		sn := serviceNames[service]
		if sn == "" {
			sn = service
		}
		q = &Quota{ServiceCode: service, ServiceName: sn, QuotaCode: code, DefaultValue: value, Unit: "None", Adjustable: true}
		a.quotas[quotaKey(service, code)] = q
	}
	if name != "" {
		q.QuotaName = name
	}
	return q
}

// SetQuotaUsage sets the usage a quota utilization report shows for a quota.
func (a *Account) SetQuotaUsage(service, code string, usage float64) error {
	a.lock()
	defer a.unlock()
	q := a.quotas[quotaKey(service, code)]
	if q == nil {
		return errf(404, "NoSuchResourceException", "quota %s/%s does not exist", service, code)
	}
	q.Usage = &usage
	return nil
}

// ClearAppliedQuota leaves a quota to ListAWSDefaultServiceQuotas alone:
// ListServiceQuotas stops returning it.
func (a *Account) ClearAppliedQuota(service, code string) {
	a.lock()
	defer a.unlock()
	if q := a.quotas[quotaKey(service, code)]; q != nil {
		q.Applied = false
	}
}

// DeleteQuota removes a quota from both listings.
func (a *Account) DeleteQuota(service, code string) {
	a.lock()
	defer a.unlock()
	delete(a.quotas, quotaKey(service, code))
}

// Quotas returns every quota, sorted by service and code.
func (a *Account) Quotas() []Quota {
	a.lock()
	defer a.unlock()
	var out []Quota
	for _, k := range slices.Sorted(maps.Keys(a.quotas)) {
		out = append(out, *a.quotas[k])
	}
	return out
}
