// Command ebtest runs the PutEvents-faithful EventBridge test server
// (adapters/eventbridge/ebtest) for manual runs and end-to-end tests of the
// daemon binary:
//
//	ebtest -addr 127.0.0.1:4010 -bus reservation -bus analytics
//
// Point a client at it with AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:4010
// (any credentials, any region). Every accepted entry is printed to stdout as
// one JSON line {"EventId","EventBusName","Source","DetailType","Detail"[,
// "Time","Resources"]}; entries answered with success for a bus that does not
// exist (what AWS does) are reported on stderr as they come. The listening URL is printed
// on stderr once the server is up.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var buses stringList
	addr := flag.String("addr", "127.0.0.1:4010", "address to listen on (host:port)")
	flag.Var(&buses, "bus", "an event bus that exists (repeatable; none: every bus exists)")
	maxBytes := flag.Int("max-entry-bytes", ebtest.DefaultMaxEntryBytes, "size limit of one request's entries")
	reject := flag.Bool("reject-unknown-bus", false, "fail entries for an unknown bus (ResourceNotFoundException) instead of accepting and dropping them as AWS does")
	stall := flag.Bool("stall", false, "accept every request and never answer it, like a hung endpoint")
	flag.Parse()

	var mu sync.Mutex
	stdout := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	s, err := ebtest.Listen(*addr, ebtest.Options{
		Buses:            buses,
		RejectUnknownBus: *reject,
		MaxEntryBytes:    *maxBytes,
		OnAccept: func(e ebtest.Entry) {
			mu.Lock()
			defer mu.Unlock()
			if err := enc.Encode(e); err == nil {
				_ = stdout.Flush()
			}
		},
		OnDrop: func(e ebtest.Entry) {
			fmt.Fprintf(os.Stderr, "ebtest: bus %q does not exist: event %s accepted and dropped, as AWS does\n", e.Bus, e.EventID)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ebtest:", err)
		os.Exit(1)
	}
	if *stall {
		s.Stall()
	}
	fmt.Fprintf(os.Stderr, "ebtest: PutEvents server listening on %s (buses: %s)\n", s.URL, listOrAny(buses))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Close()
	mu.Lock()
	_ = stdout.Flush()
	mu.Unlock()
}

func listOrAny(l []string) string {
	if len(l) == 0 {
		return "any"
	}
	return strings.Join(l, ", ")
}
