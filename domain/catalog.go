package domain

import "fmt"

// EventName is data.event in an envelope.
type EventName string

const (
	EventCreated    EventName = "CREATED"
	EventReserved   EventName = "RESERVED"
	EventCancelled  EventName = "CANCELLED"
	EventCheckedIn  EventName = "CHECKED_IN"
	EventCheckedOut EventName = "CHECKED_OUT"
	EventOpened     EventName = "OPENED"
	EventClosed     EventName = "CLOSED"
	EventUnattended EventName = "UNATTENDED"
)

// catalog is ordered (not a map) so EventNames is stable for listings and
// golden tests.
var catalog = []struct {
	name       EventName
	detailType string
}{
	{EventCreated, "Created"},
	{EventReserved, "Reserved"},
	{EventCancelled, "Cancelled"},
	{EventCheckedIn, "CheckedIn"},
	{EventCheckedOut, "CheckedOut"},
	{EventOpened, "Opened"},
	{EventClosed, "Closed"},
	{EventUnattended, "Unattended"},
}

// DetailTypeOf maps an event to its EventBridge DetailType. An event outside
// the catalog is an error, never a silent pass.
func DetailTypeOf(e EventName) (string, error) {
	for _, c := range catalog {
		if c.name == e {
			return c.detailType, nil
		}
	}
	return "", fmt.Errorf("event %q is not in the event catalog", e)
}

// EventNames lists the catalog in a fixed order; the slice is a copy.
func EventNames() []EventName {
	names := make([]EventName, len(catalog))
	for i, c := range catalog {
		names[i] = c.name
	}
	return names
}
