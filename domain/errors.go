package domain

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
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

// maxQuoted is how much of an input value an error message shows. Commands
// come from the network: a reason that repeats a megabyte-long field would
// flood logs, dead letters and outcomes, and an operator needs only the start.
const maxQuoted = 64

// quote is %q for input in error messages, bounded: at most maxQuoted bytes
// of s, cut on a UTF-8 boundary, and when cut, an ellipsis and the full
// length: "AAAA…" (1048576 bytes). Every input an error quotes goes through
// it (or through excerpt), so Error() stays short whatever the input.
func quote(s string) string {
	head, cut := clip(s)
	if !cut {
		return strconv.Quote(s)
	}
	return strconv.Quote(head+"…") + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// excerpt is quote for raw JSON text, shown as it was written (a number, a
// string with its quotes, an object): bounded the same way, not re-quoted.
func excerpt(raw string) string {
	head, cut := clip(raw)
	if !cut {
		return raw
	}
	return head + "… (" + strconv.Itoa(len(raw)) + " bytes)"
}

// clip returns at most maxQuoted bytes of s, not splitting a UTF-8 sequence,
// and whether it cut anything.
func clip(s string) (string, bool) {
	if len(s) <= maxQuoted {
		return s, false
	}
	n := maxQuoted
	// Back up to the start of the sequence that straddles the cut; invalid
	// bytes are not sequences, so look back no further than one rune.
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			n = i
			break
		}
	}
	return s[:n], true
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

// Quote is %q for a value that came from outside, bounded as every error of
// this package bounds its input (see quote): for messages of other packages
// that repeat input, so that no log line or reason carries a megabyte.
func Quote(s string) string { return quote(s) }

// Excerpt bounds text that came from outside (an error message that repeats
// its input, a JSON value) the same way, without quoting it.
func Excerpt(s string) string { return excerpt(s) }
