package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/time/rate"

	"github.com/upgradeguard/upgradeguard/internal/awsapi"
)

// AWSConfig holds the flags shared by the AWS collectors.
type AWSConfig struct {
	Regions     []string
	RoleARNs    []string
	EndpointURL string
	ClusterName string
	APIRate     float64
	APIBurst    int
}

func addAWSFlags(cmd *kingpin.CmdClause) *AWSConfig {
	c := &AWSConfig{}
	cmd.Flag("aws.region", "AWS region to collect from (repeatable); required by the AWS collectors.").StringsVar(&c.Regions)
	cmd.Flag("aws.role-arn", "IAM role to assume for an account (repeatable); without it the default credential chain (IRSA, EKS Pod Identity, instance profile, environment) is used for one account.").StringsVar(&c.RoleARNs)
	cmd.Flag("aws.endpoint-url", "Send every AWS API request to this endpoint instead of AWS's (a VPC endpoint proxy, or the test fake).").StringVar(&c.EndpointURL)
	cmd.Flag("aws.cluster-name", "Cluster name in the kubernetes.io/cluster/<name> tags of its Auto Scaling groups and subnets; defaults to --cluster.").StringVar(&c.ClusterName)
	cmd.Flag("aws.api-rate", "AWS API requests per second the exporter allows itself per account and region, retries included, so it never competes with the VPC CNI for EC2's request limits.").Default("5").Float64Var(&c.APIRate)
	cmd.Flag("aws.api-burst", "Burst of AWS API requests above aws.api-rate.").Default("10").IntVar(&c.APIBurst)
	return c
}

// awsTarget is one account in one region, with its client configuration
// and request budget.
type awsTarget struct {
	Account, Region string
	Config          aws.Config
	Budget          *rate.Limiter
}

// awsTargets resolves the accounts and regions to collect from. The account
// ID comes from STS GetCallerIdentity, which every identity may call.
func awsTargets(ctx context.Context, c *AWSConfig, budgets *awsapi.Budgets, requests *awsapi.Requests, logger *slog.Logger) ([]awsTarget, error) {
	if len(c.Regions) == 0 {
		return nil, UsageError{fmt.Errorf("the AWS collectors need at least one --aws.region")}
	}
	roles := c.RoleARNs
	if len(roles) == 0 {
		roles = []string{""}
	}
	var out []awsTarget
	for _, region := range c.Regions {
		// The SDK's own log lines go to logger at debug level.
		base, err := awsapi.LoadConfig(ctx, region, c.EndpointURL, logger)
		if err != nil {
			return nil, fmt.Errorf("loading AWS configuration for %s: %w", region, err)
		}
		for _, role := range roles {
			cfg := base.Copy()
			if role != "" {
				cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), role,
					func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "upgradeguard" }))
			}
			// Budget and count through the same middleware as everything else.
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			id, err := sts.NewFromConfig(cfg, func(o *sts.Options) {
				o.APIOptions = append(o.APIOptions, requests.APIOptions(nil))
			}).GetCallerIdentity(cctx, &sts.GetCallerIdentityInput{})
			cancel()
			if err != nil {
				who := "the default credentials"
				if role != "" {
					who = "role " + role
				}
				return nil, fmt.Errorf("identifying the AWS account of %s in %s: %w", who, region, err)
			}
			account := aws.ToString(id.Account)
			logger.Info("AWS account resolved", "account", account, "region", region, "arn", aws.ToString(id.Arn))
			cfg.APIOptions = append(cfg.APIOptions, requests.ForAccount(account).APIOptions(budgets.For(account, region)))
			out = append(out, awsTarget{Account: account, Region: region, Config: cfg, Budget: budgets.For(account, region)})
		}
	}
	return out, nil
}

func (c *AWSConfig) clusterName(fallback string) string {
	if c.ClusterName != "" {
		return c.ClusterName
	}
	return strings.TrimSpace(fallback)
}
