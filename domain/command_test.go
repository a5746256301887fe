package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseCommandErrors(t *testing.T) {
	h101 := strings.Repeat("a", 101)
	for _, tc := range []struct {
		name, in string
		kind     InvalidKind
		field    string
		msg      string // exact Error() text when set
	}{
		{"not JSON", `{"type":`, Malformed, "", ""},
		{"empty", ``, Malformed, "", ""},
		{"trailing garbage", `{"type":"CloseSlots","id":"c"} x`, Malformed, "", ""},
		{"two values", `{"type":"CloseSlots","id":"c"}{}`, Malformed, "", ""},
		{"array", `[1]`, Malformed, "", ""},
		{"null", `null`, Malformed, "", ""},
		{"unknown type", `{"type":"BookRoom","id":"c"}`, UnknownType, "type", ""},
		{"missing type", `{"id":"c"}`, Malformed, "type", ""},
		{"unknown field", `{"type":"CloseSlots","id":"c","extra":1}`, Malformed, "extra", ""},
		{"miscased field", `{"Type":"CloseSlots","id":"c"}`, Malformed, "Type", ""},
		{"unknown data field", `{"type":"CheckIn","id":"c","data":{"slotId":"` + idA + `","room":"x"}}`, Malformed, "data.room", ""},
		{"miscased data field", `{"type":"CheckIn","id":"c","data":{"slotID":"` + idA + `"}}`, Malformed, "data.slotID", ""},
		{"data on CloseSlots", `{"type":"CloseSlots","id":"c","data":{"all":true}}`, Malformed, "data.all", ""},
		{"data not an object", `{"type":"CheckIn","id":"c","data":"x"}`, Malformed, "data", ""},
		{"id not a string", `{"type":"CloseSlots","id":7}`, Malformed, "id", ""},
		{"startHour not a number", `{"type":"CreateSlots","id":"c","data":{"startHour":"6"}}`, Malformed, "data.startHour", ""},
		{"missing id", `{"type":"CloseSlots"}`, Invalid, "id", ""},
		{"missing data", `{"type":"CheckIn","id":"c"}`, Invalid, "data.slotId", ""},
		{"bad slotId", `{"type":"CheckIn","id":"c","data":{"slotId":"42"}}`, Invalid, "data.slotId",
			`invalid command: data.slotId: must be a UUID in canonical lowercase form, got "42"`},
		{"uppercase slotId", `{"type":"CheckIn","id":"c","data":{"slotId":"` + strings.ToUpper(idA) + `"}}`, Invalid, "data.slotId", ""},
		{"hostName 101 chars", `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + idA + `","hostName":"` + h101 + `"}}`, Invalid, "data.hostName",
			"invalid command: data.hostName: must be at most 100 characters, got 101"},
		{"hostName blank", `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + idA + `","hostName":"  "}}`, Invalid, "data.hostName", ""},
		{"startHour 25", `{"type":"CreateSlots","id":"c","data":{"startHour":25}}`, Invalid, "data.startHour",
			"invalid command: data.startHour: must be between 0 and 23, got 25"},
		{"start+count>24", `{"type":"CreateSlots","id":"c","data":{"startHour":20,"count":5}}`, Invalid, "data.count",
			"invalid command: data.count: startHour + count must be at most 24, got 20 + 5 = 25"},
		{"count 0", `{"type":"CreateSlots","id":"c","data":{"count":0}}`, Invalid, "data.count", ""},
		{"bad date", `{"type":"CreateSlots","id":"c","data":{"date":"2026-13-01"}}`, Invalid, "data.date", ""},
		{"version 2", `{"type":"CloseSlots","id":"c","version":2}`, UnsupportedVersion, "version",
			"invalid command: version: unsupported version 2, only 1 is supported"},
		// 0 is not "absent": a sender that writes a version means it.
		{"version 0", `{"type":"CloseSlots","id":"c","version":0}`, UnsupportedVersion, "version",
			"invalid command: version: unsupported version 0, only 1 is supported"},
		{"version -1", `{"type":"CloseSlots","id":"c","version":-1}`, UnsupportedVersion, "version", ""},
		{"version 1.5", `{"type":"CloseSlots","id":"c","version":1.5}`, UnsupportedVersion, "version",
			"invalid command: version: unsupported version 1.5, only 1 is supported"},
		{"version 1.0", `{"type":"CloseSlots","id":"c","version":1.0}`, UnsupportedVersion, "version", ""},
		{"version 1e0", `{"type":"CloseSlots","id":"c","version":1e0}`, UnsupportedVersion, "version", ""},
		{"version huge", `{"type":"CloseSlots","id":"c","version":1` + strings.Repeat("0", 400) + `}`, UnsupportedVersion, "version", ""},
		{"version string", `{"type":"CloseSlots","id":"c","version":"1"}`, Malformed, "version",
			`invalid command: version: must be an integer, got "1"`},
		{"version null", `{"type":"CloseSlots","id":"c","version":null}`, Malformed, "version", ""},
		{"version bool", `{"type":"CloseSlots","id":"c","version":true}`, Malformed, "version", ""},
		// A later version may add fields; the version is the useful answer.
		{"version 2 with new field", `{"type":"CloseSlots","id":"c","version":2,"priority":1}`, UnsupportedVersion, "version", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCommand([]byte(tc.in))
			var e *InvalidCommandError
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *InvalidCommandError", err)
			}
			if e.Kind != tc.kind || e.Field != tc.field {
				t.Fatalf("got kind %s field %q (%v), want kind %s field %q", e.Kind, e.Field, err, tc.kind, tc.field)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Fatalf("message\n got: %s\nwant: %s", err, tc.msg)
			}
			if !IsInvalidCommand(fmt.Errorf("wrapped: %w", err)) || IsRejected(err) {
				t.Fatalf("classification wrong for %v", err)
			}
		})
	}
}

func TestParseCommandAccepts(t *testing.T) {
	for _, in := range []string{
		`{"type":"CloseSlots","id":"c"}`,
		`{"type":"CloseSlots","id":"c","data":{}}`,
		`{"type":"UnattendSlots","id":"c","data":null,"version":1}`,
		`{"type":"UnattendSlots","id":"c","version": 1 }`,
		` {"type":"CreateSlots","id":"c","data":{"startHour":14,"count":10}} ` + "\n",
		`{"type":"CreateSlots","id":"c","data":{"startHour":0,"count":24,"date":"2026-02-28"}}`,
		`{"type":"ReserveSlot","id":"c","correlationId":"k","data":{"slotId":"` + idA + `","hostName":"` + strings.Repeat("é", 100) + `"}}`,
		`{"type":"OpenSlot","id":"c","data":{"slotId":"` + idA + `"}}`,
	} {
		c, err := ParseCommand([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if c.Version != 1 {
			t.Errorf("%s: version %d, want 1", in, c.Version)
		}
	}
}

func TestParseCommandKeepsWhatItCouldRead(t *testing.T) {
	c, err := ParseCommand([]byte(`{"type":"CheckIn","id":"c-9","correlationId":"k","data":{"slotId":"nope"}}`))
	if err == nil || c.ID != "c-9" || c.Type != CmdCheckIn || c.CorrelationID != "k" {
		t.Fatalf("got %+v, %v", c, err)
	}
}

func TestEnsureIDs(t *testing.T) {
	in := []byte(`{"type":"ReserveSlot","data":{"slotId":"` + idA + `","hostName":"A & B"},"extra":1}`)
	out, c, err := EnsureIDs(in)
	if err != nil {
		t.Fatal(err)
	}
	if checkSlotID(c.ID) != nil || checkSlotID(c.CorrelationID) != nil || c.ID == c.CorrelationID {
		t.Fatalf("ids %q %q: want two distinct new UUIDs", c.ID, c.CorrelationID)
	}
	var back map[string]json.RawMessage
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if string(back["id"]) != `"`+c.ID+`"` || string(back["correlationId"]) != `"`+c.CorrelationID+`"` {
		t.Fatalf("bytes do not carry the ids: %s", out)
	}
	// Everything else goes through untouched, unknown fields included, so
	// ParseCommand downstream is still as strict as on the original.
	if string(back["data"]) != `{"slotId":"`+idA+`","hostName":"A & B"}` || string(back["extra"]) != "1" {
		t.Fatalf("other members changed: %s", out)
	}
	if _, err := ParseCommand(out); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("ParseCommand after EnsureIDs: %v, want the unknown field reported", err)
	}

	full := []byte(`{"type":"CloseSlots","id":"c-1","correlationId":"k-1"}`)
	out, c, err = EnsureIDs(full)
	if err != nil || !bytes.Equal(out, full) || c.ID != "c-1" || c.CorrelationID != "k-1" || c.Type != CmdCloseSlots {
		t.Fatalf("complete command: %s %+v %v; want bytes unchanged", out, c, err)
	}
	out, c, err = EnsureIDs([]byte(`{"type":"CloseSlots","id":"mine"}`))
	if err != nil || c.ID != "mine" || c.CorrelationID == "" {
		t.Fatalf("kept id: %s %+v %v", out, c, err)
	}
	for _, bad := range []string{`{"type":`, `[]`, `{"id":3}`} {
		if _, _, err := EnsureIDs([]byte(bad)); !IsInvalidCommand(err) {
			t.Errorf("%s: got %v, want an invalid command error", bad, err)
		}
	}
}

// encoding/json turns bytes that are not UTF-8, and escapes of lone
// surrogates, into U+FFFD without an error: the command would create slots
// with another id, or reserve for another name. Both are malformed, and the
// error says where.
func TestParseCommandRefusesWhatJSONWouldRewrite(t *testing.T) {
	reserve := func(host string) string {
		return `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + idA + `","hostName":"` + host + `"}}`
	}
	for _, tc := range []struct {
		name, in string
		bad      string // the reason names the offset where this starts in `in`
	}{
		{"invalid byte in id", `{"type":"CreateSlots","id":"c-` + "\xff" + `"}`, "\xff"},
		{"invalid byte in correlationId", `{"type":"CreateSlots","id":"c","correlationId":"k` + "\xc3" + `"}`, "\xc3"},
		{"truncated sequence in hostName", reserve("Sam \xe2\x82"), "\xe2"},
		{"overlong encoding", reserve("\xc0\xaf"), "\xc0"},
		{"encoded surrogate", reserve("\xed\xa0\x80"), "\xed"},
		{"invalid byte in a key", `{"type":"CloseSlots","id":"c","x` + "\xfe" + `":1}`, "\xfe"},
		{"lone high surrogate escape", reserve(`Sam \ud800`), `\ud800`},
		{"lone low surrogate escape", reserve(`\udc00 Sam`), `\udc00`},
		{"high surrogate then a letter", reserve(`\ud83dA`), `\ud83d`},
	} {
		offset := fmt.Sprintf("offset %d", strings.Index(tc.in, tc.bad))
		t.Run(tc.name, func(t *testing.T) {
			for fn, parse := range map[string]func([]byte) error{
				"ParseCommand": func(b []byte) error { _, err := ParseCommand(b); return err },
				"EnsureIDs":    func(b []byte) error { _, _, err := EnsureIDs(b); return err },
			} {
				err := parse([]byte(tc.in))
				var e *InvalidCommandError
				if !errors.As(err, &e) || e.Kind != Malformed {
					t.Fatalf("%s: got %v, want a malformed command", fn, err)
				}
				if !strings.Contains(e.Reason, offset) {
					t.Errorf("%s: reason %q does not name %s", fn, e.Reason, offset)
				}
			}
		})
	}
	// A surrogate pair is one character, and escapes that only look alike
	// are fine.
	for _, host := range []string{`\ud83d\ude00 Sam`, `Sam \\ud800`, `\"\ud83d\udE00\"`, "Zoë 😀"} {
		c, err := ParseCommand([]byte(reserve(host)))
		if err != nil {
			t.Errorf("hostName %s: %v", host, err)
			continue
		}
		if _, err := decodeReserve(c.Data); err != nil {
			t.Errorf("hostName %s: %v", host, err)
		}
	}
}

func TestHostNameRefusesControlCharacters(t *testing.T) {
	for _, host := range []string{`\u0000`, `Sam\u0000`, "Sam\\tPerson", `Sam\nPerson`, `\u001f`, `Sam\u007f`, `\r`} {
		in := `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + idA + `","hostName":"` + host + `"}}`
		_, err := ParseCommand([]byte(in))
		var e *InvalidCommandError
		if !errors.As(err, &e) || e.Kind != Invalid || e.Field != "data.hostName" || !strings.Contains(e.Reason, "control character") {
			t.Errorf("hostName %s: got %v, want data.hostName invalid for a control character", host, err)
		}
	}
	// Only C0 and DEL: other characters, spaces included, are a name's own.
	in := `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + idA + `","hostName":"Sam Person \u00a0\u0085 Ünal"}}`
	if _, err := ParseCommand([]byte(in)); err != nil {
		t.Errorf("printable and C1 characters: %v", err)
	}
}

// Commands come from the network: no error may repeat a huge value whole.
// What the error shows is the value's start and its length.
func TestErrorsQuoteInputBounded(t *testing.T) {
	mb := strings.Repeat("A", 1<<20)
	for _, tc := range []struct {
		name, in, field string
	}{
		{"unknown type", `{"type":"` + mb + `","id":"c"}`, "type"},
		{"bad date", `{"type":"CreateSlots","id":"c","data":{"date":"` + mb + `"}}`, "data.date"},
		{"bad slotId", `{"type":"CheckIn","id":"c","data":{"slotId":"` + mb + `"}}`, "data.slotId"},
		{"unknown field", `{"type":"CloseSlots","id":"c","` + mb + `":1}`, `"` + mb[:maxQuoted] + `…" (1048576 bytes)`},
		{"unknown data field", `{"type":"CheckIn","id":"c","data":{"` + mb + `":1}}`, `data."` + mb[:maxQuoted] + `…" (1048576 bytes)`},
		{"wrong type", `{"type":"CloseSlots","id":["` + mb + `"]}`, "id"},
		{"version", `{"type":"CloseSlots","id":"c","version":"` + mb + `"}`, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCommand([]byte(tc.in))
			var e *InvalidCommandError
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *InvalidCommandError", err)
			}
			if e.Field != tc.field {
				t.Errorf("field %.200q, want %.200q", e.Field, tc.field)
			}
			if msg := err.Error(); len(msg) >= 512 || !strings.Contains(msg, "AAAA…") || !strings.Contains(msg, "(1048") {
				t.Errorf("message of %d bytes: %.600s; want under 512 bytes, with the start of the value and its length", len(msg), msg)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"2026-13-01", `"2026-13-01"`},
		{"tab\there", `"tab\there"`},
		{strings.Repeat("a", maxQuoted), `"` + strings.Repeat("a", maxQuoted) + `"`},
		{strings.Repeat("a", maxQuoted+1), `"` + strings.Repeat("a", maxQuoted) + `…" (65 bytes)`},
		// "é" is 2 bytes: the cut goes before a character, never into one.
		{strings.Repeat("a", maxQuoted-1) + "éé", `"` + strings.Repeat("a", maxQuoted-1) + `…" (67 bytes)`},
		{strings.Repeat("€", 30), `"` + strings.Repeat("€", 21) + `…" (90 bytes)`},
	} {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%.80q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := excerpt(`["` + strings.Repeat("x", 100) + `"]`); got != `["`+strings.Repeat("x", maxQuoted-2)+`… (104 bytes)` {
		t.Errorf("excerpt: %s", got)
	}
}

// Ids go into every outcome, Detail, header and log line: a command whose id
// or correlationId is huge or carries control characters is invalid.
func TestIDsAreBoundedAndPrintable(t *testing.T) {
	long := strings.Repeat("a", 129)
	for name, c := range map[string]struct{ cmd, field string }{
		"long id":               {`{"type":"CloseSlots","id":"` + long + `"}`, "id"},
		"long correlation id":   {`{"type":"CloseSlots","id":"x","correlationId":"` + long + `"}`, "correlationId"},
		"newline in id":         {`{"type":"CloseSlots","id":"a\nb"}`, "id"},
		"NUL in correlation id": {`{"type":"CloseSlots","id":"x","correlationId":"a\u0000"}`, "correlationId"},
	} {
		_, err := ParseCommand([]byte(c.cmd))
		var ice *InvalidCommandError
		if !errors.As(err, &ice) || ice.Kind != Invalid || ice.Field != c.field {
			t.Errorf("%s: %v, want Invalid at %s", name, err, c.field)
		}
	}
	if _, err := ParseCommand([]byte(`{"type":"CloseSlots","id":"` + strings.Repeat("a", 128) + `"}`)); err != nil {
		t.Errorf("a 128-byte id: %v", err)
	}
}
