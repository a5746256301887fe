// Package amqptest helps tests that use the machine's RabbitMQ, which
// outlives them: what a test declares there it removes.
package amqptest

import amqp091 "github.com/rabbitmq/amqp091-go"

// MachineURL is the machine's RabbitMQ (docs/TESTING-BROKERS.md).
const MachineURL = "amqp://guest:guest@127.0.0.1:5672/"

// Delete removes queues, then exchanges, from the broker at url, best
// effort: it runs at cleanup, where a broker gone away is no news.
func Delete(url string, queues []string, exchanges ...string) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	for _, x := range exchanges {
		_ = ch.ExchangeDelete(x, false, false)
	}
}
