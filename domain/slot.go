// Package domain is the slot reservation business: slots, the commands that
// change them, the aggregate that decides, and the event envelopes those
// decisions become. It knows no broker, database or Watermill on purpose, so
// every rule here can be tested with plain values and a moved clock.
package domain

import "time"

// Status is the stored state of a slot.
type Status string

const (
	StatusOpen      Status = "OPEN"
	StatusReserved  Status = "RESERVED"
	StatusCheckedIn Status = "CHECKED_IN"
	StatusClosed    Status = "CLOSED"
)

// Valid reports whether s is one of the four stored states; stores use it to
// refuse rows they cannot interpret rather than carry them along.
func (s Status) Valid() bool {
	switch s {
	case StatusOpen, StatusReserved, StatusCheckedIn, StatusClosed:
		return true
	}
	return false
}

// TimeSlot is the hour a slot covers, in UTC.
type TimeSlot struct {
	StartTime time.Time `json:"startTime"`
	EndTime   time.Time `json:"endTime"`
}

// Slot is one bookable hour of one room.
type Slot struct {
	SlotID    string    `json:"slotId"`
	HostName  string    `json:"hostName"` // "" when nobody holds it
	TimeSlot  TimeSlot  `json:"timeSlot"`
	Status    Status    `json:"slotStatus"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Version is the optimistic-concurrency counter: 0 means never stored,
	// each decided change adds 1. Stores write a change only if the stored
	// version is still Version-1, which is what the original lacked.
	Version int `json:"version"`
}
