package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// StopPrometheusReplica stops replica i's Thanos sidecar and Prometheus (i
// is 0 for r0, 1 for r1), as when the node under them is replaced. Thanos
// Query keeps the sidecar in its store list, with an error.
func (tb *Testbed) StopPrometheusReplica(i int) error {
	st := tb.prom
	if st == nil || i < 0 || i >= len(st.replicas) {
		return fmt.Errorf("StopPrometheusReplica(%d): no such replica", i)
	}
	r := st.replicas[i]
	for _, name := range []string{"thanos-sidecar-" + r, "prometheus-" + r} {
		p := tb.running(name)
		if p == nil {
			return fmt.Errorf("StopPrometheusReplica(%d): %s is not running", i, name)
		}
		if err := p.Stop(); err != nil {
			return fmt.Errorf("stopping %s: %w", name, err)
		}
	}
	return nil
}

// StartPrometheusReplica starts replica i's Prometheus and sidecar again,
// with the same flags and data, and waits until Thanos Query sees every
// sidecar healthy.
func (tb *Testbed) StartPrometheusReplica(ctx context.Context, i int) error {
	st := tb.prom
	if st == nil || i < 0 || i >= len(st.replicas) {
		return fmt.Errorf("StartPrometheusReplica(%d): no such replica", i)
	}
	r := st.replicas[i]
	promName, sideName := "prometheus-"+r, "thanos-sidecar-"+r
	promArgs, sideArgs := tb.lastArgs(promName), tb.lastArgs(sideName)
	if promArgs == nil || sideArgs == nil {
		return fmt.Errorf("StartPrometheusReplica(%d): never started", i)
	}
	prom, err := tb.startProc(promName, tb.Binaries.Prometheus, promArgs...)
	if err != nil {
		return err
	}
	if err := waitProcs(ctx, thanosTimeout, promName+" /-/ready after a restart", []*Process{prom}, httpOK(tb.PrometheusURLs[i]+"/-/ready", "")); err != nil {
		return err
	}
	side, err := tb.startProc(sideName, tb.Binaries.Thanos, sideArgs...)
	if err != nil {
		return err
	}
	var sideHTTP string
	for _, a := range sideArgs {
		if v, ok := strings.CutPrefix(a, "--http-address="); ok {
			sideHTTP = "http://" + v + "/-/ready"
		}
	}
	if sideHTTP == "" {
		return errors.New("StartPrometheusReplica: the sidecar has no --http-address")
	}
	procs := []*Process{prom, side}
	if err := waitProcs(ctx, thanosTimeout, sideName+" /-/ready after a restart", procs, httpOK(sideHTTP, "")); err != nil {
		return err
	}
	return waitProcs(ctx, thanosTimeout, "thanos query to see the sidecar of "+r+" healthy again", procs, func(ctx context.Context) (bool, error) {
		body, err := httpGet(ctx, tb.ThanosQueryURL+"/api/v1/stores")
		if err != nil {
			return false, err
		}
		var resp struct {
			Data map[string][]struct {
				LastError *string             `json:"lastError"`
				LabelSets []map[string]string `json:"labelSets"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return false, fmt.Errorf("decoding /api/v1/stores: %w", err)
		}
		for _, s := range resp.Data["sidecar"] {
			for _, ls := range s.LabelSets {
				if ls["replica"] == r {
					if s.LastError == nil {
						return true, nil
					}
					return false, fmt.Errorf("sidecar of %s: %s", r, *s.LastError)
				}
			}
		}
		return false, fmt.Errorf("no sidecar of %s in the store list", r)
	})
}

// running returns the running process of that name, or nil.
func (tb *Testbed) running(name string) *Process {
	for _, p := range tb.Processes() {
		if exited, _ := p.Exited(); p.Name == name && !exited {
			return p
		}
	}
	return nil
}

// lastArgs returns the arguments of the last process of that name.
func (tb *Testbed) lastArgs(name string) []string {
	var args []string
	for _, p := range tb.Processes() {
		if p.Name == name {
			args = p.Args
		}
	}
	return args
}
