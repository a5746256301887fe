package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// EnvelopeOf is the envelope of an event read back from the four fields of
// its entry, as a bus hands an event back when it could
// not deliver it (a rule target's or a subscription's dead-letter queue).
// The Detail is kept byte for byte: ID, CorrelationID, SlotID and Event are
// read from it, not written into it, so the event re-emitted is the event
// that was emitted.
//
// It checks what a re-emit needs and nothing of the business: Source and
// DetailType set, Detail a JSON object (valid UTF-8, nothing after it)
// whose metadata.id is a short printable string, the id consumers drop
// repeats by. Errors quote the input bounded.
func EnvelopeOf(bus, source, detailType, detail string) (Envelope, error) {
	switch {
	case source == "":
		return Envelope{}, errors.New("the event has no Source")
	case detailType == "":
		return Envelope{}, errors.New("the event has no DetailType")
	case detail == "":
		return Envelope{}, errors.New("the event has no Detail")
	case !utf8.ValidString(detail):
		return Envelope{}, errors.New("the event's Detail is not valid UTF-8")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(detail), &top); err != nil || top == nil {
		return Envelope{}, fmt.Errorf("the event's Detail is not a JSON object: %s", Excerpt(detail))
	}
	var meta, data map[string]json.RawMessage
	if json.Unmarshal(top["metadata"], &meta) != nil || meta == nil {
		return Envelope{}, errors.New("the event's Detail has no metadata object: not an event emitd made")
	}
	_ = json.Unmarshal(top["data"], &data) // best effort: only the slot id and event name
	id, err := idString(meta["id"])
	if err != nil {
		return Envelope{}, fmt.Errorf("the event's metadata.id %w", err)
	}
	return Envelope{
		EventBusName: bus, Source: source, DetailType: detailType, Detail: detail,
		ID: id, CorrelationID: bestEffort(meta["correlationId"]), SlotID: bestEffort(data["slotId"]),
		Event: EventName(bestEffort(data["event"])),
	}, nil
}

// idString reads an id: a string, set, at most maxIDBytes, no control
// characters (it keys the replay count and travels into listings and logs).
func idString(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", errors.New("is missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("is not a string: %s", excerpt(string(raw)))
	}
	switch {
	case s == "":
		return "", errors.New("is empty")
	case len(s) > maxIDBytes:
		return "", fmt.Errorf("is %d bytes, over %d: %s", len(s), maxIDBytes, quote(s))
	case strings.IndexFunc(s, isControl) >= 0:
		return "", fmt.Errorf("has control characters: %s", quote(s))
	}
	return s, nil
}

// bestEffort reads a short printable string, or nothing.
func bestEffort(raw json.RawMessage) string {
	s, err := idString(raw)
	if err != nil {
		return ""
	}
	return s
}
