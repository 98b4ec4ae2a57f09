package gate

import "testing"

func TestCustomChecks(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	p := testPolicy(t, `
custom:
- name: etcd-ok
  query: etcd_ok
  min: 1
- name: no-crashloops
  query: crashloops
  empty: true
- name: ratio
  query: scalar(ratio)
  max: 0.5
`)
	g, _ := newGate(t, f, p)
	f.set(healthy()...)
	f.custom = map[string]string{
		"etcd_ok":       `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"member":"a"},"value":[1,"NaN"]}]}}`,
		"crashloops":    `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		"scalar(ratio)": `{"status":"success","data":{"resultType":"scalar","result":[1,"0.25"]}}`,
	}
	e := eval(t, g, "node-b")
	wantRow(t, e, "custom/etcd-ok", Unknown, "NaN")
	wantRow(t, e, "custom/no-crashloops", Pass, "")
	wantRow(t, e, "custom/ratio", Pass, "")
	// The custom rows come last, in the policy's order.
	n := len(e.Checks)
	if e.Checks[n-3].Name != "custom/etcd-ok" || e.Checks[n-1].Name != "custom/ratio" {
		t.Errorf("custom rows not last in order: %s", dump(e))
	}
	// A custom check with thresholds and an empty result is UNKNOWN; with
	// empty: false it fails; a value beyond the threshold fails.
	f.custom["etcd_ok"] = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	f.custom["crashloops"] = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"x"},"value":[1,"3"]}]}}`
	f.custom["scalar(ratio)"] = `{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}`
	e = eval(t, g, "node-b")
	wantRow(t, e, "custom/etcd-ok", Unknown, "empty result")
	wantRow(t, e, "custom/no-crashloops", Fail, `{pod="x"} 3`)
	wantRow(t, e, "custom/ratio", Fail, "+Inf")
}
