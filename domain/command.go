package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"
)

// CommandType names what a command asks for.
type CommandType string

const (
	CmdCreateSlots   CommandType = "CreateSlots"
	CmdReserveSlot   CommandType = "ReserveSlot"
	CmdCancelSlot    CommandType = "CancelSlot"
	CmdCheckIn       CommandType = "CheckIn"
	CmdCheckOut      CommandType = "CheckOut"
	CmdOpenSlot      CommandType = "OpenSlot"
	CmdCloseSlots    CommandType = "CloseSlots"
	CmdUnattendSlots CommandType = "UnattendSlots"
)

var commandTypes = []CommandType{
	CmdCreateSlots, CmdReserveSlot, CmdCancelSlot, CmdCheckIn,
	CmdCheckOut, CmdOpenSlot, CmdCloseSlots, CmdUnattendSlots,
}

// CommandTypes lists every command type in a fixed order; the slice is a copy.
func CommandTypes() []CommandType { return append([]CommandType(nil), commandTypes...) }

// Known reports whether t is one of the command types.
func (t CommandType) Known() bool {
	for _, k := range commandTypes {
		if k == t {
			return true
		}
	}
	return false
}

// Command is what services put on the commands topic.
type Command struct {
	Type          CommandType     `json:"type"`
	ID            string          `json:"id"`
	CorrelationID string          `json:"correlationId,omitempty"`
	Version       int             `json:"version,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
}

// CreateSlotsData is the data of CreateSlots; pointers tell "absent" (use the
// default) from an explicit 0.
type CreateSlotsData struct {
	Date      string `json:"date,omitempty"`      // YYYY-MM-DD; default: the UTC date of "now"
	StartHour *int   `json:"startHour,omitempty"` // default 6
	Count     *int   `json:"count,omitempty"`     // default 10
}

// ReserveSlotData is the data of ReserveSlot.
type ReserveSlotData struct {
	SlotID   string `json:"slotId"`
	HostName string `json:"hostName"`
}

// SlotRef is the data of CancelSlot, CheckIn, CheckOut and OpenSlot.
type SlotRef struct {
	SlotID string `json:"slotId"`
}

const (
	defaultStartHour = 6
	defaultCount     = 10
	maxHostNameRunes = 100
	maxIDBytes       = 128 // a UUID is 36
	dateLayout       = "2006-01-02"
)

// Exact key sets. encoding/json matches field names case-insensitively and
// DisallowUnknownFields does not change that, so strictness ("SlotID" is
// not "slotId") is checked against these lists before decoding.
var (
	commandKeys     = []string{"type", "id", "correlationId", "version", "data"}
	createSlotsKeys = []string{"date", "startHour", "count"}
	reserveKeys     = []string{"slotId", "hostName"}
	slotRefKeys     = []string{"slotId"}
)

// ParseCommand decodes and validates one command. Every error is an
// *InvalidCommandError. On error the returned Command holds whatever could be
// read (id, type, ...) so the poison queue can still say which command it was.
// A missing version becomes 1.
func ParseCommand(b []byte) (Command, error) {
	var cmd Command
	obj, err := decodeObject(b, "")
	if err != nil {
		return cmd, err
	}
	// Version first: a later version may carry fields this one does not
	// know, and "unsupported version" is the useful answer then, not
	// "unknown field".
	if raw, ok := obj["version"]; ok {
		v, err := parseVersion(raw)
		cmd.Version = v
		if err != nil {
			return cmd, err
		}
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"type", (*string)(&cmd.Type)}, {"id", &cmd.ID}, {"correlationId", &cmd.CorrelationID}} {
		if err := field(obj, f.key, f.key, "a string", f.dst); err != nil {
			return cmd, err
		}
	}
	if raw, ok := obj["data"]; ok && !isNull(raw) {
		cmd.Data = raw
	}
	if err := checkKeys(obj, "", commandKeys); err != nil {
		return cmd, err
	}
	if cmd.Type == "" {
		return cmd, invalidf(Malformed, "type", "required")
	}
	if cmd.ID == "" {
		return cmd, invalidf(Invalid, "id", "required (ids are assigned where a command enters the system)")
	}
	// Ids travel into every outcome, event Detail, log line and message
	// header: bounded, and printable.
	for _, f := range []struct{ path, v string }{{"id", cmd.ID}, {"correlationId", cmd.CorrelationID}} {
		if len(f.v) > maxIDBytes {
			return cmd, invalidf(Invalid, f.path, "must be at most %d bytes, got %d", maxIDBytes, len(f.v))
		}
		if strings.IndexFunc(f.v, isControl) >= 0 {
			return cmd, invalidf(Invalid, f.path, "must not contain control characters")
		}
	}
	cmd.Version = 1
	return cmd, cmd.Validate()
}

// Validate checks the command type, version and the data for that type.
func (c Command) Validate() error {
	if err := c.checkTypeAndVersion(); err != nil {
		return err
	}
	var err error
	switch c.Type {
	case CmdCreateSlots:
		_, err = decodeCreateSlots(c.Data)
	case CmdReserveSlot:
		_, err = decodeReserve(c.Data)
	case CmdCloseSlots, CmdUnattendSlots:
		_, err = dataObject(c.Data, nil)
	default:
		_, err = decodeSlotRef(c.Data)
	}
	return err
}

// checkTypeAndVersion is what Validate checks before the data.
func (c Command) checkTypeAndVersion() error {
	if !c.Type.Known() {
		names := make([]string, len(commandTypes))
		for i, t := range commandTypes {
			names[i] = string(t)
		}
		return invalidf(UnknownType, "type", "unknown command type %s, want one of %s", quote(string(c.Type)), strings.Join(names, ", "))
	}
	if c.Version != 0 && c.Version != 1 {
		return invalidf(UnsupportedVersion, "version", "unsupported version %d, only 1 is supported", c.Version)
	}
	return nil
}

// EnsureIDs gives a command entering the system its id and correlationId if
// it lacks them, and returns the bytes to send. Bytes that already have both
// are returned unchanged. It does not validate the rest: `emitd send` may
// deliberately send a bad command (to exercise the poison queue); use
// ParseCommand to validate. The returned Command is filled best effort.
func EnsureIDs(b []byte) ([]byte, Command, error) {
	var cmd Command
	obj, err := decodeObject(b, "")
	if err != nil {
		return nil, cmd, err
	}
	changed := false
	for _, f := range []struct {
		key string
		dst *string
	}{{"id", &cmd.ID}, {"correlationId", &cmd.CorrelationID}} {
		if err := field(obj, f.key, f.key, "a string", f.dst); err != nil {
			return nil, cmd, err
		}
		if *f.dst == "" {
			*f.dst = uuid.NewString()
			obj[f.key], _ = json.Marshal(*f.dst)
			changed = true
		}
	}
	_ = field(obj, "type", "type", "", (*string)(&cmd.Type)) // best effort, see above
	_ = field(obj, "version", "version", "", &cmd.Version)
	if raw, ok := obj["data"]; ok && !isNull(raw) {
		cmd.Data = raw
	}
	if !changed {
		return b, cmd, nil
	}
	out, err := marshal(obj)
	if err != nil {
		return nil, cmd, invalidf(Malformed, "", "re-encode: %v", err)
	}
	return out, cmd, nil
}

// parseVersion reads a version that is present: only the number 1 is
// supported. Decoding into an int would let 0 through as "absent" and refuse
// 1.5 as a wrong type; a version is a number, so any other number (0, 2, -1,
// 1.5, 1.0) is an unsupported version, and anything else (a string, null)
// is malformed. The int returned is the version when it is an integer, for
// the poison queue to report.
func parseVersion(raw json.RawMessage) (int, error) {
	tok := string(bytes.TrimSpace(raw))
	if tok == "1" {
		return 1, nil
	}
	// The whole input is valid JSON by now, so a value that starts like a
	// number is one.
	if tok == "" || (tok[0] != '-' && (tok[0] < '0' || tok[0] > '9')) {
		return 0, invalidf(Malformed, "version", "must be an integer, got %s", excerpt(tok))
	}
	v, _ := strconv.Atoi(tok)
	return v, invalidf(UnsupportedVersion, "version", "unsupported version %s, only 1 is supported", excerpt(tok))
}

// createSlotsPlan is CreateSlots with the defaults resolved.
type createSlotsPlan struct {
	day              time.Time // midnight UTC; zero => the UTC date of now
	startHour, count int
}

func decodeCreateSlots(raw json.RawMessage) (createSlotsPlan, error) {
	p := createSlotsPlan{startHour: defaultStartHour, count: defaultCount}
	obj, err := dataObject(raw, createSlotsKeys)
	if err != nil {
		return p, err
	}
	var d CreateSlotsData
	if err := field(obj, "date", "data.date", "a string", &d.Date); err != nil {
		return p, err
	}
	if err := field(obj, "startHour", "data.startHour", "an integer", &d.StartHour); err != nil {
		return p, err
	}
	if err := field(obj, "count", "data.count", "an integer", &d.Count); err != nil {
		return p, err
	}
	if d.Date != "" {
		day, err := time.ParseInLocation(dateLayout, d.Date, time.UTC)
		if err != nil {
			return p, invalidf(Invalid, "data.date", "must be a date YYYY-MM-DD, got %s", quote(d.Date))
		}
		p.day = day
	}
	if d.StartHour != nil {
		p.startHour = *d.StartHour
		if p.startHour < 0 || p.startHour > 23 {
			return p, invalidf(Invalid, "data.startHour", "must be between 0 and 23, got %d", p.startHour)
		}
	}
	if d.Count != nil {
		p.count = *d.Count
		if p.count < 1 {
			return p, invalidf(Invalid, "data.count", "must be at least 1, got %d", p.count)
		}
	}
	// Slots are whole hours of one day, so the last must start by 23:00.
	if p.startHour+p.count > 24 {
		return p, invalidf(Invalid, "data.count", "startHour + count must be at most 24, got %d + %d = %d",
			p.startHour, p.count, p.startHour+p.count)
	}
	return p, nil
}

func decodeReserve(raw json.RawMessage) (ReserveSlotData, error) {
	var d ReserveSlotData
	obj, err := dataObject(raw, reserveKeys)
	if err != nil {
		return d, err
	}
	if err := field(obj, "slotId", "data.slotId", "a string", &d.SlotID); err != nil {
		return d, err
	}
	if err := field(obj, "hostName", "data.hostName", "a string", &d.HostName); err != nil {
		return d, err
	}
	if err := checkSlotID(d.SlotID); err != nil {
		return d, err
	}
	// Kept as sent (no trimming): the name is the host's, not ours to edit.
	// Control characters are refused, not removed: a name is printed on
	// screens and in logs, and PostgreSQL cannot store NUL in text at all.
	if i := strings.IndexFunc(d.HostName, isControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(d.HostName[i:])
		return d, invalidf(Invalid, "data.hostName", "must not contain control characters, found U+%04X at byte %d", r, i)
	}
	switch n := utf8.RuneCountInString(d.HostName); {
	case strings.TrimSpace(d.HostName) == "":
		return d, invalidf(Invalid, "data.hostName", "required, must not be empty or only spaces")
	case n > maxHostNameRunes:
		return d, invalidf(Invalid, "data.hostName", "must be at most %d characters, got %d", maxHostNameRunes, n)
	}
	return d, nil
}

func decodeSlotRef(raw json.RawMessage) (SlotRef, error) {
	var d SlotRef
	obj, err := dataObject(raw, slotRefKeys)
	if err != nil {
		return d, err
	}
	if err := field(obj, "slotId", "data.slotId", "a string", &d.SlotID); err != nil {
		return d, err
	}
	return d, checkSlotID(d.SlotID)
}

// checkSlotID wants the canonical lowercase form the aggregate mints, so an
// id that only differs in spelling is refused clearly instead of "not found".
func checkSlotID(id string) error {
	if id == "" {
		return invalidf(Invalid, "data.slotId", "required")
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 || strings.ToLower(id) != id {
		return invalidf(Invalid, "data.slotId", "must be a UUID in canonical lowercase form, got %s", quote(id))
	}
	return nil
}

// isControl is the C0 range and DEL: characters that have no business in a
// name and that terminals and logs interpret.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// decodeObject reads exactly one JSON object (no trailing bytes) into its
// raw members.
func decodeObject(b []byte, path string) (map[string]json.RawMessage, error) {
	if err := checkText(b, path); err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, invalidf(Malformed, path, "must be a JSON object, got %s", excerpt(te.Value))
		}
		return nil, invalidf(Malformed, path, "not valid JSON: %v", err) // encoding/json quotes at most one character
	}
	if obj == nil {
		return nil, invalidf(Malformed, path, "must be a JSON object, got null")
	}
	return obj, nil
}

// checkText refuses what encoding/json would otherwise rewrite without a
// word: bytes that are not UTF-8 and \u escapes of lone UTF-16 surrogates
// both become U+FFFD, so a host name or an id would silently change. Such
// bytes are not the command the sender meant: malformed, naming the offset
// (relative to b) so the sender can find them.
func checkText(b []byte, path string) error {
	inString := false
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return invalidf(Malformed, path, "not valid UTF-8: byte 0x%02x at offset %d", c, i)
			}
			i += size
			continue
		}
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(b):
			if b[i+1] == 'u' {
				if r, ok := hex4(b[i+2:]); ok && utf16.IsSurrogate(r) {
					if r2, ok := lowSurrogateAt(b, i+6); r < 0xdc00 && ok && r2 >= 0xdc00 {
						i += 12 // a valid pair: one character outside the BMP
						continue
					}
					return invalidf(Malformed, path, "invalid escape \\u%04x at offset %d: a lone UTF-16 surrogate is not a character", r, i)
				}
			}
			if b[i+1] < utf8.RuneSelf {
				i += 2 // the escaped byte, so that \" does not end the string
				continue
			}
		}
		i++
	}
	return nil
}

// lowSurrogateAt reads a \uXXXX escape at b[i:] whose value is a UTF-16 surrogate.
func lowSurrogateAt(b []byte, i int) (rune, bool) {
	if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	r, ok := hex4(b[i+2:])
	return r, ok && utf16.IsSurrogate(r)
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// dataObject decodes a command's data; absent or null data reads as {} so
// that a missing required field is reported by name.
func dataObject(raw json.RawMessage, allowed []string) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || isNull(raw) {
		return map[string]json.RawMessage{}, nil
	}
	obj, err := decodeObject(raw, "data")
	if err != nil {
		return nil, err
	}
	return obj, checkKeys(obj, "data.", allowed)
}

// checkKeys refuses members not in allowed (exact case), first in sorted
// order so the error is the same every time.
func checkKeys(obj map[string]json.RawMessage, prefix string, allowed []string) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
next:
	for _, k := range keys {
		for _, a := range allowed {
			if k == a {
				continue next
			}
		}
		path := prefix + keyPath(k)
		for _, a := range allowed {
			if strings.EqualFold(k, a) {
				return invalidf(Malformed, path, "unknown field (did you mean %q?)", a)
			}
		}
		if len(allowed) == 0 {
			return invalidf(Malformed, path, "unknown field (this command takes no data)")
		}
		return invalidf(Malformed, path, "unknown field, want one of %s", strings.Join(allowed, ", "))
	}
	return nil
}

// keyPath is an unknown member's name as a path element: as it is when it
// is short and plain, else quoted and bounded, so that a key of a megabyte
// or of control characters cannot make the Field (and the message) huge or
// unreadable.
func keyPath(k string) string {
	if len(k) <= maxQuoted && strconv.Quote(k) == `"`+k+`"` && !strings.ContainsAny(k, ". ") {
		return k
	}
	return quote(k)
}

// field decodes one member, if present, reporting a wrong JSON type as
// Malformed at its path.
func field[T any](obj map[string]json.RawMessage, key, path, want string, dst *T) error {
	raw, ok := obj[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return invalidf(Malformed, path, "must be %s, got %s", want, excerpt(string(raw)))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// marshal encodes without HTML escaping, like the original's JSON.stringify,
// so a host named "A & B" stays readable on the wire.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
