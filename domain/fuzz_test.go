package domain

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParseCommand checks what ParseCommand promises whatever the bytes (the
// seed corpus is testdata/fuzz/FuzzParseCommand: valid commands of every
// type, and bad ones): it never panics; every error is an
// *InvalidCommandError of a known Kind whose message stays short (it goes
// to logs, dead letters and outcomes); and a command it accepts is complete
// (version 1, a known type, an id) and holds only valid UTF-8, so that no
// byte of it was silently replaced. `make fuzz` runs it.
func FuzzParseCommand(f *testing.F) {
	f.Add([]byte(`{"type":"CheckIn","id":"c","data":{"slotId":"` + idA + `"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, sent, ensureErr := EnsureIDs(b)
		if ensureErr != nil {
			checkInvalid(t, "EnsureIDs", ensureErr)
		}
		c, err := ParseCommand(b)
		if err != nil {
			checkInvalid(t, "ParseCommand", err)
			return
		}
		if c.Version != 1 || !c.Type.Known() || c.ID == "" {
			t.Fatalf("accepted %+v: want version 1, a known type and an id", c)
		}
		for name, s := range map[string]string{"type": string(c.Type), "id": c.ID, "correlationId": c.CorrelationID, "data": string(c.Data)} {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted a command whose %s is not valid UTF-8: %q", name, s)
			}
		}
		switch c.Type {
		case CmdReserveSlot:
			d, err := decodeReserve(c.Data)
			if err != nil || !utf8.ValidString(d.HostName) || !utf8.ValidString(d.SlotID) {
				t.Fatalf("accepted ReserveSlot with data %+v: %v", d, err)
			}
		case CmdCreateSlots:
			if _, err := decodeCreateSlots(c.Data); err != nil {
				t.Fatalf("accepted CreateSlots whose data does not decode: %v", err)
			}
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted, then Validate: %v", err)
		}

		// What `emitd send` does before sending: the bytes it sends parse to
		// the same command.
		if ensureErr != nil {
			t.Fatalf("ParseCommand accepts, EnsureIDs refuses: %v", ensureErr)
		}
		again, err := ParseCommand(out)
		if err != nil || again.ID != c.ID || again.Type != c.Type || sent.ID != c.ID ||
			(c.CorrelationID != "" && again.CorrelationID != c.CorrelationID) {
			t.Fatalf("EnsureIDs changed the command: %+v -> %+v (%v)", c, again, err)
		}
	})
}

func checkInvalid(t *testing.T, fn string, err error) {
	t.Helper()
	var e *InvalidCommandError
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %T %v, want *InvalidCommandError", fn, err, err)
	}
	switch e.Kind {
	case Malformed, UnknownType, Invalid, UnsupportedVersion:
	default:
		t.Fatalf("%s: kind %q is none of the four", fn, e.Kind)
	}
	if n := len(err.Error()); n >= 512 {
		t.Fatalf("%s: error of %d bytes, want under 512: %.600s", fn, n, err)
	}
}
