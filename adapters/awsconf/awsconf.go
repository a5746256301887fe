// Package awsconf is what the AWS brokers (sqs, sns, eventbridge) share:
// loading the SDK configuration, their region and endpoint settings, and
// the hint that turns an SDK error into what to fix.
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/emitd/emitd/configs"
)

// ErrNoRegion: neither the configuration nor the SDK's environment names a
// region. The adapters wrap it ("sqs: no AWS region: ...").
var ErrNoRegion = errors.New("no AWS region")

// Load resolves the SDK configuration: preset if set, else the SDK's default
// chain (environment, shared config and credentials files, SSO, IMDS...),
// with region applied on top.
func Load(ctx context.Context, region string, preset *aws.Config) (aws.Config, error) {
	if preset != nil {
		c := preset.Copy()
		if region != "" {
			c.Region = region
		}
		return c, nil
	}
	opts := []func(*config.LoadOptions) error{
		// The SDK's default client has no timeout for a response that never
		// comes; a hung broker would stall the relay. 20 s long polls answer
		// within the header timeout.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = 45 * time.Second
		})),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	c, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	return c, nil
}

var awsRegionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

// ValidateRegionEndpoint checks section.region and section.endpoint.
func ValidateRegionEndpoint(section, region, endpoint string, add func(string, string, ...any)) {
	if region != "" && !awsRegionName.MatchString(region) {
		add(section+".region", "%q is not an AWS region name, e.g. eu-north-1", region)
	}
	if endpoint != "" && !configs.HasScheme(endpoint, "http", "https") {
		add(section+".endpoint", "%q: want a URL such as http://127.0.0.1:4566 (or leave it out: the SDK uses AWS_ENDPOINT_URL_* or the real service)", endpoint)
	}
}

// Hint adds what usually fixes an AWS SDK error to its message.
func Hint(err error, regionPath string) error {
	var missing *aws.MissingRegionError
	switch {
	case errors.Is(err, ErrNoRegion) || errors.As(err, &missing):
		return fmt.Errorf("%w (set %s, or AWS_REGION)", err, regionPath)
	case noCredentials(err):
		return fmt.Errorf("%w (no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role)", err)
	}
	return err
}

// noCredentials says whether err is the credential chain finding nothing.
// The SDK gives that failure no type: the client's identity step wraps the
// chain's error with fmt.Errorf ("get identity: failed to refresh cached
// credentials, no EC2 IMDS role found, ..."; aws.CredentialsCache,
// credentials/ec2rolecreds), and the older signer path says "failed to
// retrieve credentials" (aws/signer/v4.SigningError, which also wraps
// signing failures that are not about credentials). So the text is the only
// thing to go by, here and nowhere else.
func noCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found")
}
