package testbed

// The store gateway of Options.StoreGateway: the standard Thanos layout has,
// beside each Prometheus replica's sidecar, a store gateway serving the
// blocks the sidecars uploaded to object storage, so the store gateway
// announces the external labels of every replica (Thanos Query lists one
// label set per set of block labels it serves). The testbed writes one block
// per replica into a filesystem bucket instead of uploading, as
// `promtool tsdb create-blocks-from openmetrics` and a `thanos` section in
// each block's meta.json (thanos pkg/block/metadata meta.go) make them.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Uploaded block range of the store gateway: the data of each replica from
// UploadedFrom to UploadedTo before the testbed started, older than any
// instant or 10-minute query reads.
const (
	UploadedFrom = 4 * time.Hour
	UploadedTo   = 3 * time.Hour
)

// StoreGatewayName is the process name of the store gateway.
const StoreGatewayName = "thanos-store"

// startStoreGateway writes the bucket and starts `thanos store` on grpcPort
// and httpPort; it returns once the store gateway is ready.
func (tb *Testbed) startStoreGateway(ctx context.Context, st *promStack, grpcPort, httpPort int) (*Process, error) {
	promtool := filepath.Join(filepath.Dir(tb.Binaries.Prometheus), "promtool")
	if p, err := exec.LookPath("promtool"); err == nil {
		promtool = p
	}
	bucket := filepath.Join(st.dir, "bucket")
	now := time.Now()
	for _, r := range st.replicas {
		var om strings.Builder
		om.WriteString("# TYPE upgradeguard_testbed_uploaded gauge\n")
		for ts := now.Add(-UploadedFrom); ts.Before(now.Add(-UploadedTo)); ts = ts.Add(time.Minute) {
			fmt.Fprintf(&om, "upgradeguard_testbed_uploaded{job=\"testbed\"} 1 %d\n", ts.Unix())
		}
		om.WriteString("# EOF\n")
		omFile := filepath.Join(st.dir, "uploaded-"+r+".om")
		if err := os.WriteFile(omFile, []byte(om.String()), 0o644); err != nil {
			return nil, err
		}
		// Each replica's block is written alone, then labelled.
		out := filepath.Join(st.dir, "blocks-"+r)
		if b, err := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", omFile, out).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("promtool tsdb create-blocks-from openmetrics for %s: %w: %s", r, err, truncate(string(b), 500))
		}
		metas, err := filepath.Glob(filepath.Join(out, "*", "meta.json"))
		if err != nil || len(metas) == 0 {
			return nil, fmt.Errorf("promtool made no block for %s (%v)", r, err)
		}
		for _, m := range metas {
			if err := labelBlock(m, map[string]string{"cluster": "testbed", "replica": r}); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(bucket, 0o755); err != nil {
				return nil, err
			}
			if err := os.Rename(filepath.Dir(m), filepath.Join(bucket, filepath.Base(filepath.Dir(m)))); err != nil {
				return nil, err
			}
		}
	}
	objstore := filepath.Join(st.dir, "bucket.yml")
	if err := os.WriteFile(objstore, []byte("type: FILESYSTEM\nconfig:\n  directory: "+bucket+"\n"), 0o644); err != nil {
		return nil, err
	}
	p, err := tb.startProc(StoreGatewayName, tb.Binaries.Thanos, "store",
		"--data-dir="+filepath.Join(st.dir, "store-cache"),
		"--objstore.config-file="+objstore,
		fmt.Sprintf("--grpc-address=127.0.0.1:%d", grpcPort),
		fmt.Sprintf("--http-address=127.0.0.1:%d", httpPort),
	)
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/-/ready", httpPort)
	if err := waitProcs(ctx, thanosTimeout, StoreGatewayName+" /-/ready", []*Process{p}, httpOK(url, "")); err != nil {
		return nil, err
	}
	return p, nil
}

// labelBlock adds the thanos section to a block's meta.json: its external
// labels, raw resolution and a source.
func labelBlock(path string, labels map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	meta["thanos"] = map[string]any{"labels": labels, "downsample": map[string]any{"resolution": 0}, "source": "testbed"}
	if b, err = json.Marshal(meta); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// healthyStoreGateways counts the store gateways in Thanos Query's
// /api/v1/stores that have no error and announce both replicas' labels.
func healthyStoreGateways(ctx context.Context, queryURL string) (int, error) {
	body, err := httpGet(ctx, queryURL+"/api/v1/stores")
	if err != nil {
		return 0, err
	}
	var resp struct {
		Data map[string][]struct {
			LastError *string             `json:"lastError"`
			LabelSets []map[string]string `json:"labelSets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("decoding /api/v1/stores: %w: %s", err, truncate(string(body), 300))
	}
	n := 0
	for _, s := range resp.Data["store"] {
		if (s.LastError == nil || *s.LastError == "") && len(s.LabelSets) >= 2 {
			n++
		}
	}
	return n, nil
}
