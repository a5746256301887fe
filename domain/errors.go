package domain

import (
	"errors"
	"fmt"
)

// InvalidKind says why a command could not be processed at all. Every kind is
// permanent: retrying the same bytes can never succeed, so the router sends
// them straight to the poison queue.
type InvalidKind string

const (
	Malformed          InvalidKind = "malformed"           // not JSON, or not the shape of a command
	UnknownType        InvalidKind = "unknown_type"        // type is not in the command list
	Invalid            InvalidKind = "invalid"             // well-formed, but a value breaks a rule
	UnsupportedVersion InvalidKind = "unsupported_version" // version other than 1
)

// InvalidCommandError is the one error type for commands that cannot be
// processed; Kind lets callers classify without string matching.
type InvalidCommandError struct {
	Kind   InvalidKind
	Field  string // JSON path of the offending value, e.g. "data.startHour"; "" when it is the whole input
	Reason string
}

func (e *InvalidCommandError) Error() string {
	if e.Field == "" {
		return "invalid command: " + e.Reason
	}
	return "invalid command: " + e.Field + ": " + e.Reason
}

func invalidf(kind InvalidKind, field, format string, args ...any) *InvalidCommandError {
	return &InvalidCommandError{Kind: kind, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// IsInvalidCommand reports whether err (or anything it wraps) is an
// *InvalidCommandError.
func IsInvalidCommand(err error) bool {
	var e *InvalidCommandError
	return errors.As(err, &e)
}

// RejectedError is a valid command refused by a business rule. It is an
// outcome, not a failure: the router acknowledges the command and reports it.
type RejectedError struct {
	Reason string
	// Code is a short, bounded name for the rule (RejectSlotNotFound,
	// RejectWrongStatus), for counters; Reason is for people.
	Code string
}

// Rejection codes.
const (
	RejectSlotNotFound = "slot_not_found"
	RejectWrongStatus  = "wrong_status"
)

func (e *RejectedError) Error() string { return e.Reason }

// IsRejected reports whether err (or anything it wraps) is a *RejectedError.
func IsRejected(err error) bool {
	var e *RejectedError
	return errors.As(err, &e)
}

// The original system's messages, kept verbatim because senders may match
// on them.
const msgSlotNotFound = "A slot was not found with the provided ID."

func errSlotNotFound() error {
	return &RejectedError{Reason: msgSlotNotFound, Code: RejectSlotNotFound}
}

// errWrongStatus names the event the command would have emitted, as the
// original did ('CANCELLED', 'CHECKED_OUT', ...), not the target status.
func errWrongStatus(to EventName, was Status) error {
	return &RejectedError{Code: RejectWrongStatus, Reason: fmt.Sprintf(
		"Slot is not in the correct status to be updated to '%s' status, it was in '%s' state!", to, was)}
}
