// Command kfake runs an in-memory Kafka broker (franz-go's kfake) on
// 127.0.0.1 for manual runs and end-to-end tests of the daemon:
//
//	kfake -port 9092
//
// Topics are created on first use with 4 partitions. -port 0 picks a free
// port; the "kfake listening on 127.0.0.1:PORT" line says which. It runs
// until SIGINT or SIGTERM and keeps every record in memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9092, "TCP port on 127.0.0.1 (0: any free port)")
	partitions := flag.Int("partitions", 4, "partitions of auto-created topics")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *port, *partitions, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, port, partitions int, out io.Writer) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(partitions))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(out, "kfake listening on %s\n", c.ListenAddrs()[0])
	<-ctx.Done()
	return nil
}
