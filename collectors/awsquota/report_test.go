package awsquota

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

const ratio = "upgradeguard_aws_quota_utilization_ratio/"

func TestUtilizationReport(t *testing.T) {
	e := newEnv(t)
	e.acct.SetTiming(awsfake.Timing{ReportDelay: 30 * time.Millisecond})
	// Tracked quotas are computed from describe calls: no ratio for them.
	if err := e.acct.SetQuotaUsage("vpc", codeENIs, 1000); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.SetQuotaUsage("vpc", "L-F678F1CE", 4); err != nil {
		t.Fatal(err)
	}
	e.srv.SetPageSize(1, 1)
	c := e.collector(t, nil)
	for _, r := range c.regions {
		r.reportPoll = 5 * time.Millisecond
	}
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	got, err := scrape(t, c)
	if err != nil {
		t.Fatal(err)
	}
	// VPCs 4 of 5, internet gateways 2 of 5 (the catalogue's usage).
	expect(t, got, map[string]float64{ratio + "L-F678F1CE": 0.8, ratio + "L-A4707A72": 0.4, ratio + codeENIs: -1})
	if n := e.srv.Calls("GetQuotaUtilizationReport"); n < 3 {
		t.Errorf("GetQuotaUtilizationReport called %d times, want polling and pages", n)
	}

	// A failing report keeps the last good ratios and fails the collector.
	e.srv.Fail("StartQuotaUtilizationReport", awsfake.Fault{Code: awsfake.Denied})
	if err := refresh(t, c); err == nil || !strings.Contains(err.Error(), "quota utilization report") {
		t.Fatalf("refresh error %v", err)
	}
	got, err = scrape(t, c)
	if err == nil {
		t.Error("Update returned no error with the report failing")
	}
	expect(t, got, map[string]float64{ratio + "L-F678F1CE": 0.8})
}

// TestLabelsMatch: every usage and surge series has a limit series with the
// same labels, so that usage / limit works in PromQL without ignoring().
func TestLabelsMatch(t *testing.T) {
	e := newEnv(t)
	fixture(t, e.acct)
	c := e.collector(t, func(o *Options) { o.ClusterName = "none" })
	if err := refresh(t, c); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors.AsPrometheus(c, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]map[string]bool{}
	for _, mf := range mfs {
		series[mf.GetName()] = map[string]bool{}
		for _, m := range mf.GetMetric() {
			var b strings.Builder
			for _, l := range m.GetLabel() {
				b.WriteString(l.GetName() + "=" + l.GetValue() + ",")
			}
			series[mf.GetName()][b.String()] = true
		}
	}
	for _, name := range []string{"upgradeguard_aws_quota_usage", "upgradeguard_aws_quota_surge_demand"} {
		for s := range series[name] {
			if !series["upgradeguard_aws_quota_limit"][s] {
				t.Errorf("%s{%s} has no limit with the same labels", name, s)
			}
		}
	}
	if len(series["upgradeguard_aws_quota_usage"]) < 30 {
		t.Errorf("only %d usage series", len(series["upgradeguard_aws_quota_usage"]))
	}
}

// TestRefreshersRun: the refreshers run in the background and say when
// they last succeeded; Update never calls AWS.
func TestRefreshersRun(t *testing.T) {
	e := newEnv(t)
	c := e.collector(t, func(o *Options) { o.UsageInterval, o.QuotaInterval = time.Hour, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, r := range c.Refreshers() {
		go r.Run(ctx, e.collectorLogger())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := true
		for _, r := range c.Refreshers() {
			if last, _ := r.Status(); last.IsZero() {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refreshers did not complete")
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls := e.srv.CallCounts()
	n := 0
	for _, v := range calls {
		n += v
	}
	for range 3 {
		if _, err := scrape(t, c); err != nil {
			t.Fatal(err)
		}
	}
	after := 0
	for _, v := range e.srv.CallCounts() {
		after += v
	}
	if after != n {
		t.Errorf("scrapes called AWS: %d -> %d requests", n, after)
	}
	if got := testutil.CollectAndCount(collectors.AsPrometheus(c, nil), "upgradeguard_aws_refresh_last_success_timestamp_seconds"); got != 3 {
		t.Errorf("%d last-success series, want 3 (limits, usage, report)", got)
	}
}
