package domain

// Envelope is one event as it leaves the system: the four EventBridge entry
// fields, plus the broker-neutral facts adapters need for keys, headers and
// de-duplication (never serialized into the entry itself).
type Envelope struct {
	EventBusName string `json:"EventBusName"`
	Source       string `json:"Source"`
	DetailType   string `json:"DetailType"`
	// Detail is the JSON text of {"metadata":{...},"data":{...}}; its bytes are
	// final once made: relays, adapters and replay never re-encode it.
	Detail string `json:"Detail"`

	ID            string    `json:"-"` // metadata.id
	CorrelationID string    `json:"-"` // metadata.correlationId
	SlotID        string    `json:"-"` // data.slotId: the per-slot ordering key
	Event         EventName `json:"-"` // data.event
}
