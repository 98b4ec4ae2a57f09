package awsapi

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// LoadConfig loads the default credential chain for region, the SDK's own
// logging routed to logger at debug level (SDKLogger), and sends every
// request to endpoint when set (a VPC endpoint proxy, or the test fake).
// The exporter, roll, gate hold and preflight all build their AWS
// configuration here.
func LoadConfig(ctx context.Context, region, endpoint string, logger *slog.Logger) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region), awsconfig.WithLogger(SDKLogger(logger)))
	if err != nil {
		return cfg, err
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return cfg, nil
}

// SDKLogger routes aws-sdk-go-v2's own log lines (aws.Config's Logger) to
// the product's logger at debug level, whatever the SDK's classification:
// without it the SDK writes its warnings, such as "failed to discard
// remaining HTTP response body", to stderr, in the middle of a command's
// output. The classification is kept as an attribute. A nil logger drops
// the lines.
func SDKLogger(logger *slog.Logger) logging.Logger {
	if logger == nil {
		return logging.Nop{}
	}
	return sdkLogger{logger: logger, ctx: context.Background()}
}

type sdkLogger struct {
	logger *slog.Logger
	ctx    context.Context
}

// Logf implements logging.Logger.
func (l sdkLogger) Logf(classification logging.Classification, format string, v ...any) {
	if !l.logger.Enabled(l.ctx, slog.LevelDebug) {
		return
	}
	l.logger.Log(l.ctx, slog.LevelDebug, fmt.Sprintf(format, v...), "component", "aws-sdk", "classification", string(classification))
}

// WithContext implements logging.ContextLogger: the SDK hands each
// request's context.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	return sdkLogger{logger: l.logger, ctx: ctx}
}
