package domain

import (
	"encoding/json"
	"unicode/utf8"
)

// maxPeekedID bounds what PeekIDs takes: these values end up in outcomes
// and log lines, and a malformed command's "id" can be anything.
const maxPeekedID = 200

// PeekIDs reads, best effort, the id, type and correlationId of bytes that
// failed ParseCommand, so that the sender of an invalid command is answered
// under its own command id. A value that is not a short, valid UTF-8
// string is left out.
func PeekIDs(b []byte) (id string, typ CommandType, corr string) {
	var v struct {
		ID            json.RawMessage `json:"id"`
		Type          json.RawMessage `json:"type"`
		CorrelationID json.RawMessage `json:"correlationId"`
	}
	if json.Unmarshal(b, &v) != nil {
		return "", "", ""
	}
	str := func(raw json.RawMessage) string {
		if !utf8.Valid(raw) {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || len(s) > maxPeekedID || !utf8.ValidString(s) {
			return ""
		}
		return s
	}
	return str(v.ID), CommandType(str(v.Type)), str(v.CorrelationID)
}
