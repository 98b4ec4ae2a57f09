package awsapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
)

// TestSDKLoggerDebug: the SDK's warnings reach the product's logger at
// debug level, and nothing reaches stderr.
func TestSDKLoggerDebug(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldStderr := os.Stderr
	os.Stderr = w
	var buf bytes.Buffer
	debug := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var info bytes.Buffer
	infoOnly := slog.New(slog.NewTextHandler(&info, &slog.HandlerOptions{Level: slog.LevelInfo}))

	cfg := aws.Config{Logger: SDKLogger(debug)}
	logging.WithContext(context.Background(), cfg.Logger).Logf(logging.Warn, "failed to discard remaining HTTP response body, this may affect connection reuse")
	SDKLogger(infoOnly).Logf(logging.Warn, "failed to discard remaining HTTP response body, this may affect connection reuse")
	SDKLogger(nil).Logf(logging.Warn, "dropped")

	os.Stderr = oldStderr
	_ = w.Close()
	stderr, _ := io.ReadAll(r)
	if len(stderr) != 0 {
		t.Errorf("stderr got %q", stderr)
	}
	out := buf.String()
	for _, want := range []string{"level=DEBUG", `msg="failed to discard remaining HTTP response body, this may affect connection reuse"`, "component=aws-sdk", "classification=WARN"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug log lacks %q: %s", want, out)
		}
	}
	if info.Len() != 0 {
		t.Errorf("logged above debug: %s", info.String())
	}
}

// TestLoadConfigSDKWarningAtDebug: a configuration from LoadConfig sends
// the SDK's own warning about a response body it could not discard (here an
// answer that ends short of its Content-Length; the demo's roll met it) to
// the logger at debug level, never to stderr.
func TestLoadConfigSDKWarningAtDebug(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	const doc = `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>` +
		`<Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s", len(doc)+100, doc)
		_ = rw.Flush()
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldStderr := os.Stderr
	os.Stderr = w // before LoadConfig: the SDK's default logger would take it
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := LoadConfig(context.Background(), "eu-west-1", srv.URL, logger)
	if err == nil {
		cfg.RetryMaxAttempts = 1
		// Fails: the body ends short. What matters is where the SDK says so.
		_, callErr := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		t.Logf("the call: %v", callErr)
	}
	os.Stderr = oldStderr
	_ = w.Close()
	stderr, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(stderr) != 0 {
		t.Errorf("stderr got %q", stderr)
	}
	out := buf.String()
	for _, want := range []string{"level=DEBUG", "failed to discard remaining HTTP response body", "component=aws-sdk", "classification=WARN"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug log lacks %q: %s", want, out)
		}
	}
}
