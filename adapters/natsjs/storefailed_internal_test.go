package natsjs

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// The answer nats-server sends when it could not create a stream's store
// for a moment (jetstream_api.go: JSStreamCreateErrF with the description
// "error creating store for stream"), as the client wraps it, is retried;
// every other failed create is not. A full `make test` run once failed
// here when the code compared was JSStreamStoreFailedF, which the server
// never sends for a create.
func TestStoreFailedIsTheServersAnswer(t *testing.T) {
	answer := func(code server.ErrorIdentifier, desc string) error {
		return fmt.Errorf("natsjs: create stream: %w", &jetstream.APIError{Code: 500, ErrorCode: jetstream.ErrorCode(code), Description: desc})
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{answer(server.JSStreamCreateErrF, "error creating store for stream"), true},
		{answer(server.JSStreamCreateErrF, "stream name is required"), false},
		{answer(server.JSStreamStoreFailedF, "error creating store for stream"), false},
		{fmt.Errorf("error creating store for stream"), false},
	} {
		if got := storeFailed(c.err); got != c.want {
			t.Errorf("storeFailed(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
