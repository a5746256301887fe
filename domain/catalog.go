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

// hostRule says what data.hostName holds after an event: the published
// contract (contract.go) describes it, and the aggregate's tests hold the
// aggregate to it.
type hostRule int

const (
	hostCleared hostRule = iota // "": the slot is free
	hostSet                     // the host who holds the slot
	hostKept                    // whatever it was (a slot closed while reserved keeps its host)
)

// catalog is ordered (not a map) so EventNames is stable for listings and
// golden tests. status and host are the slot's state after the event: the
// aggregate decides them, and the event contract publishes them.
var catalog = []struct {
	name       EventName
	detailType string
	status     Status
	host       hostRule
}{
	{EventCreated, "Created", StatusOpen, hostCleared},
	{EventReserved, "Reserved", StatusReserved, hostSet},
	{EventCancelled, "Cancelled", StatusOpen, hostCleared},
	{EventCheckedIn, "CheckedIn", StatusCheckedIn, hostSet},
	{EventCheckedOut, "CheckedOut", StatusOpen, hostCleared},
	{EventOpened, "Opened", StatusOpen, hostCleared},
	{EventClosed, "Closed", StatusClosed, hostKept},
	{EventUnattended, "Unattended", StatusOpen, hostCleared},
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
