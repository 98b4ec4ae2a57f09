package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/upgradeguard/upgradeguard/internal/awsapi"
)

// loadAWSConfig loads the default credential chain for region, sends
// requests to endpoint when set, and assumes roleARN (session name
// session) when set; the SDK's own log lines go to logger at debug level.
// Shared by the roll and gate hold.
func loadAWSConfig(ctx context.Context, region, endpoint, roleARN, session string, logger *slog.Logger) (aws.Config, error) {
	cfg, err := awsapi.LoadConfig(ctx, region, endpoint, logger)
	if err != nil {
		return cfg, fmt.Errorf("AWS configuration: %w", err)
	}
	if roleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = session }))
	}
	return cfg, nil
}
