// Package router wires the Watermill router that consumes commands: the
// command handler and the middleware that decides, in one place, what a
// failure means (poison, retry, or leave for redelivery).
package router

import (
	"errors"
	"fmt"

	"github.com/emitd/emitd/domain"
)

// Class is what a handler failure means for the message.
type Class string

const (
	// Permanent: retrying cannot help (not a command, unknown type, invalid,
	// unsupported version, a handler panic). Dead-lettered at once.
	Permanent Class = "permanent"
	// Transient: anything else, which retrying may fix. Retried with
	// backoff, then dead-lettered as "retries exhausted". (A store that is
	// unavailable is not a failure of the command at all: the pipeline
	// waits for it and dead-letters nothing.)
	Transient Class = "transient"
)

// PanicError is a recovered handler panic; Where names the panicking frame.
type PanicError struct {
	Value any
	Where string
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("handler panic: %v at %s", e.Value, e.Where)
}

// permanentError marks an error as permanent where its type alone does not.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// MarkPermanent wraps err so that Classify returns Permanent.
func MarkPermanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Classify is the one place that decides a failure's class. Anything it does
// not know is transient: retrying an unknown failure a bounded number of
// times is safer than dead-lettering a good command at once.
func Classify(err error) Class {
	var pe *PanicError
	var perm permanentError
	switch {
	case domain.IsInvalidCommand(err), errors.As(err, &pe), errors.As(err, &perm):
		return Permanent
	default: // e.g. context.DeadlineExceeded, domain.ErrConflict, store errors
		return Transient
	}
}

// ReasonCode is a short, bounded name for why a message was dead-lettered,
// for counters (the full reason goes into the dead letter itself).
func ReasonCode(err error) string {
	var ice *domain.InvalidCommandError
	var pe *PanicError
	switch {
	case errors.As(err, &ice):
		return string(ice.Kind)
	case errors.As(err, &pe):
		return "panic"
	case Classify(err) == Permanent:
		return "permanent_error"
	default:
		return "retries_exhausted"
	}
}
