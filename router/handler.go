package router

import (
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
)

var errNotAdmitted = errors.New("router: message did not come through the intake")

// Handle is the router's handler: it waits for the pipeline to settle the
// message. nil acknowledges it (processed, rejected, or a duplicate); a
// *DeadLetterError sends it to the poison queue (PoisonQueue); anything
// else leaves it for redelivery.
func Handle(msg *message.Message) error {
	it := itemOf(msg)
	if it == nil {
		return MarkPermanent(errNotAdmitted)
	}
	<-it.done
	return it.err
}
