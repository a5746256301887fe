package awstest

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// Env is the AWS SDK environment of a test, as NAME=value pairs (for a child
// process): throwaway credentials, the emulator's region, and nothing of the
// machine's own (no profile, shared config or credentials file, instance
// metadata, or endpoint), then the endpoint variables given, e.g.
// {"AWS_ENDPOINT_URL_SQS": url}.
func Env(endpoints map[string]string) []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_SESSION_TOKEN=",
		"AWS_REGION=" + Region, "AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_SQS=", "AWS_ENDPOINT_URL_SNS=", "AWS_ENDPOINT_URL_EVENTBRIDGE=",
	}
	for _, k := range slices.Sorted(maps.Keys(endpoints)) {
		env = append(env, k+"="+endpoints[k])
	}
	return env
}

// SetEnv sets Env in the test process; the test's end restores it.
func SetEnv(tb testing.TB, endpoints map[string]string) {
	tb.Helper()
	for _, kv := range Env(endpoints) {
		k, v, _ := strings.Cut(kv, "=")
		tb.Setenv(k, v)
	}
}
