package domain

import (
	"fmt"
	"reflect"
	"strings"
)

// The event contract: JSON Schemas (2020-12) of what emitd emits and
// accepts, generated from the very definitions the code uses (the catalog
// above, the command key lists and limits of command.go, the Metadata of
// metadata.go, the Detail structs of envelope_factory.go), so that they
// cannot drift apart. A schema accepts exactly what emitd emits (or, for
// commands, what ParseCommand accepts), as far as JSON Schema can say it.
// What it cannot say is written in the schema's $comment:
//   - numbers compare by value, so a command's "version": 1.0 and a
//     "count": 2.0 pass the schema while ParseCommand refuses them;
//   - maxLength counts characters, while ids are bounded in bytes (128);
//   - equalities between fields (metadata.id is the envelope's id,
//     timestampEpoch is timestamp in milliseconds) are not expressible.
//
// The code is written by hand, not reflected by a schema library, because
// the rules that matter (canonical UUIDs, the startHour+count bound, a host
// name that is not only spaces, the state a slot is in after each event)
// live in code, not in struct tags, and the domain imports no
// infrastructure. Where a struct defines the keys, reflection reads them, and
// a key without a rule here is a panic at generation (a test runs it), never
// a silently missing property.

// Schema is one JSON Schema object.
type Schema = map[string]any

// JSONSchemaDialect is the dialect of every schema here.
const JSONSchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// Variant names the two copies of every event: the domain event and its
// analytics copy.
type Variant string

const (
	VariantDomain    Variant = "domain"
	VariantAnalytics Variant = "analytics"
)

// Schema ids. They are URNs: stable names that depend on no host serving
// them (`emitd catalog --format jsonschema` and the HTTP catalog list each
// schema under its id). A new version of an event is a new id.
const (
	// CommandSchemaID is any command (one of the CommandTypeSchemaID).
	CommandSchemaID = "urn:emitd:command:v1"
	OutcomeSchemaID = "urn:emitd:outcome:v1"
)

// CommandTypeSchemaID names the schema of one command type (version 1, the
// only one ParseCommand accepts).
func CommandTypeSchemaID(t CommandType) string { return "urn:emitd:command:" + string(t) + ":v1" }

// DetailSchemaID names the schema of the Detail of one event (its Source),
// in one variant, at metadata.version.
func DetailSchemaID(source string, v Variant, version int) string {
	return fmt.Sprintf("urn:emitd:detail:%s:%s:v%d", source, v, version)
}

// The patterns of the ids and times that messages repeat outside the
// Detail (headers, CloudEvents attributes).
const (
	PatternSlotID    = canonicalUUID
	PatternEventID   = uuidV4
	PatternTimestamp = millisUTC
)

// Patterns shared by the schemas. They use only what ECMA-262 and Go's
// regexp read alike (the AsyncAPI tools are JavaScript, the tests Go).
const (
	// canonicalUUID is what checkSlotID accepts and uuid.NewString makes.
	canonicalUUID = `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	// uuidV4 is what uuid.NewString mints (metadata.id).
	uuidV4 = `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`
	// millisUTC is timestampLayout: UTC, exactly three fraction digits.
	millisUTC = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`
	// wholeHourUTC is startTimeLayout for a slot: slots are whole hours.
	wholeHourUTC = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00:00\.000Z$`
	// noControl refuses what isControl refuses (C0 and DEL).
	noControl = `^[^\x00-\x1f\x7f]*$`
)

// notOnlySpace needs one character that is neither a control character nor
// white space as strings.TrimSpace sees it (unicode.IsSpace). The Unicode
// spaces are written as the characters themselves: Go's regexp has no \u
// escape, and JavaScript's \s is not Go's.
var notOnlySpace = `[^\x00-\x20\x7f` + "\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000" + `]`

func str(extra Schema) Schema {
	s := Schema{"type": "string"}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func object(props Schema, required []string) Schema {
	return Schema{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

// jsonFields lists the JSON member names of a struct, in declaration order.
func jsonFields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// hostNameSchema is a host name as decodeReserve accepts it.
func hostNameSchema() Schema {
	return str(Schema{"minLength": 1, "maxLength": maxHostNameRunes,
		"pattern":     `^[^\x00-\x1f\x7f]*` + notOnlySpace + `[^\x00-\x1f\x7f]*$`,
		"description": fmt.Sprintf("1 to %d characters, no control characters, not only white space", maxHostNameRunes)})
}

// ---- events ------------------------------------------------------------------

// EventContract is one DetailType as both buses carry it.
type EventContract struct {
	Event      EventName
	DetailType string
	// Source is the entry's Source (and the CloudEvents type).
	Source string
	// Status is data.slotStatus of the domain event: the slot's state
	// after the event.
	Status Status
	// Detail is the schema of the Detail (the JSON text inside the entry)
	// in each variant; its $id is DetailSchemaID.
	Detail map[Variant]Schema
}

// Contract describes every event this factory makes: per DetailType, the
// Source and the schemas of both variants' Detail, with the configured
// metadata pinned (consumers get exactly these values).
func (f EnvelopeFactory) Contract() ([]EventContract, error) {
	if errs := f.Meta.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("event contract: invalid metadata: %v", errs)
	}
	meta := f.metadataSchema()
	out := make([]EventContract, 0, len(catalog))
	for _, c := range catalog {
		source := f.source(c.detailType)
		ec := EventContract{Event: c.name, DetailType: c.detailType, Source: source, Status: c.status,
			Detail: map[Variant]Schema{}}
		for _, v := range []Variant{VariantDomain, VariantAnalytics} {
			typ := reflect.TypeOf(domainData{})
			if v == VariantAnalytics {
				typ = reflect.TypeOf(analyticsData{})
			}
			data, required := dataSchema(typ, c.name, c.status, c.host)
			id := DetailSchemaID(source, v, f.Meta.Version)
			title := c.detailType
			if v == VariantAnalytics {
				title += " (analytics copy)"
			}
			det := object(Schema{"metadata": meta, "data": object(data, required)}, jsonFields(reflect.TypeOf(detail[domainData]{})))
			det["$schema"] = JSONSchemaDialect
			det["$id"] = id
			det["title"] = title
			det["description"] = detailDescription(c.detailType, c.status, v)
			det["$comment"] = "Not expressible here, and true of every event: metadata.id is the envelope's event id, " +
				"timestampEpoch is timestamp in milliseconds since 1970, the keys come in the order of properties."
			ec.Detail[v] = det
		}
		out = append(out, ec)
	}
	return out, nil
}

func detailDescription(detailType string, st Status, v Variant) string {
	if v == VariantAnalytics {
		return fmt.Sprintf("The Detail of the analytics copy of %s: the domain event's, with a fresh metadata.id and without data.slotStatus.", detailType)
	}
	return fmt.Sprintf("The Detail of %s on the domain bus; data.slotStatus is %s, the slot's state after the event.", detailType, st)
}

// source is the entry Source of a DetailType, as domain() writes it.
func (f EnvelopeFactory) source(detailType string) string {
	return strings.ToLower(f.Meta.Domain + "." + f.Meta.System + "." + detailType)
}

// metadataSchema describes detailMetadata: the per-event keys by rule, the
// configured ones pinned to the configured value (Metadata's field of the
// same JSON name).
func (f EnvelopeFactory) metadataSchema() Schema {
	perEvent := map[string]Schema{
		"timestamp":      str(Schema{"pattern": millisUTC, "format": "date-time", "description": "when the event was made, UTC, exactly three fraction digits"}),
		"timestampEpoch": str(Schema{"pattern": `^(0|[1-9][0-9]*)$`, "description": "timestamp in milliseconds since 1970, as decimal text"}),
		"id":             str(Schema{"pattern": uuidV4, "format": "uuid", "description": "the event id: fresh per envelope (the analytics copy has its own); consumers drop repeats by it"}),
		"correlationId":  str(Schema{"minLength": 1, "description": "the correlationId of the command that caused the event (or one emitd gave it)"}),
	}
	configured := map[string]any{}
	mv := reflect.ValueOf(f.Meta)
	for i, name := range jsonFields(mv.Type()) {
		v := mv.Field(i).Interface()
		if tags, ok := v.([]string); ok && tags == nil {
			v = []string{} // domain() writes a list, never null
		}
		configured[name] = v
	}
	props := Schema{}
	keys := jsonFields(reflect.TypeOf(detailMetadata{}))
	for _, k := range keys {
		switch s, ok := perEvent[k]; {
		case ok:
			props[k] = s
		default:
			v, ok := configured[k]
			if !ok {
				panic("domain: event contract: no rule for metadata key " + k)
			}
			props[k] = Schema{"const": v, "description": "metadata." + k + " from the configuration"}
		}
	}
	if v, ok := props["version"].(Schema); ok {
		v["description"] = "metadata.version: the version of this event's contract (see DetailSchemaID)"
	}
	return object(props, keys)
}

// dataSchema describes domainData or analyticsData for one event.
func dataSchema(t reflect.Type, ev EventName, st Status, host hostRule) (Schema, []string) {
	var hostName Schema
	switch host {
	case hostCleared:
		hostName = Schema{"const": "", "description": "empty: nobody holds the slot after this event"}
	case hostSet:
		hostName = hostNameSchema()
	case hostKept:
		hostName = Schema{"anyOf": []any{Schema{"const": ""}, hostNameSchema()}, "description": "the host the slot had, if any"}
	}
	rules := map[string]Schema{
		"event":      {"const": string(ev)},
		"slotId":     str(Schema{"pattern": canonicalUUID, "format": "uuid", "description": "the slot: the ordering key on partitioned buses"}),
		"slotStatus": {"const": string(st), "description": "the slot's state after the event (domain bus only)"},
		"hostName":   hostName,
		"startTime":  str(Schema{"pattern": wholeHourUTC, "format": "date-time", "description": "the slot's start, UTC, on the hour, exactly three fraction digits"}),
	}
	props := Schema{}
	names := jsonFields(t)
	for _, n := range names {
		r, ok := rules[n]
		if !ok {
			panic("domain: event contract: no rule for data key " + n)
		}
		props[n] = r
	}
	return props, names
}

// ---- commands ----------------------------------------------------------------

// CommandTypeSchema is the schema of one command type, as ParseCommand
// accepts it: exactly its keys (case matters), version 1 or none, the data
// of that type.
func CommandTypeSchema(t CommandType) Schema {
	id := str(Schema{"minLength": 1, "maxLength": maxIDBytes, "pattern": noControl,
		"description": "the command id: a command delivered twice is processed once"})
	props := Schema{
		"type": Schema{"const": string(t)},
		"id":   id,
		"correlationId": Schema{"type": []any{"string", "null"}, "maxLength": maxIDBytes, "pattern": noControl,
			"description": "carried into every event the command causes; empty or null: emitd gives it one"},
		"version": Schema{"const": 1, "description": "the command's version: absent means 1, the only one supported"},
		"data":    commandData(t),
	}
	required := []string{"type", "id"}
	if t == CmdReserveSlot || t == CmdCancelSlot || t == CmdCheckIn || t == CmdCheckOut || t == CmdOpenSlot {
		required = append(required, "data")
	}
	for _, k := range commandKeys {
		if _, ok := props[k]; !ok {
			panic("domain: command contract: no rule for key " + k)
		}
	}
	if len(props) != len(commandKeys) {
		panic("domain: command contract: a rule for a key ParseCommand does not read")
	}
	s := Schema{
		"$schema": JSONSchemaDialect, "$id": CommandTypeSchemaID(t), "title": string(t),
		"type": "object", "properties": props, "required": required, "additionalProperties": false,
		"$comment": "JSON numbers compare by value: ParseCommand also refuses version 1.0 and integers written with a fraction or exponent. " +
			"id and correlationId are bounded to 128 bytes of UTF-8; maxLength counts characters.",
	}
	return s
}

// commandData is the data of one command type.
func commandData(t CommandType) Schema {
	keyed := func(keys []string, rules Schema) Schema {
		props := Schema{}
		for _, k := range keys {
			r, ok := rules[k]
			if !ok {
				panic("domain: command contract: no rule for data key " + k)
			}
			props[k] = r
		}
		return props
	}
	slotID := str(Schema{"pattern": canonicalUUID, "format": "uuid", "description": "a slot id, as events carry it (canonical lower-case UUID)"})
	switch t {
	case CmdCreateSlots:
		props := keyed(createSlotsKeys, Schema{
			"date": Schema{"anyOf": []any{Schema{"type": "null"}, Schema{"const": ""},
				str(Schema{"pattern": `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, "format": "date"})},
				"description": "YYYY-MM-DD (a real date); empty, null or absent: today (UTC)"},
			"startHour": Schema{"type": []any{"integer", "null"}, "minimum": 0, "maximum": 23,
				"description": fmt.Sprintf("the first slot's hour, UTC; absent or null: %d", defaultStartHour)},
			"count": Schema{"type": []any{"integer", "null"}, "minimum": 1, "maximum": 24,
				"description": fmt.Sprintf("how many one-hour slots; absent or null: %d", defaultCount)},
		})
		// startHour + count <= 24 (slots are hours of one day), with the
		// defaults standing in for absent or null values.
		var bounds []any
		given := func(k string) Schema {
			return Schema{"properties": Schema{k: Schema{"type": "integer"}}, "required": []any{k}}
		}
		for h := 0; h <= 23; h++ {
			bounds = append(bounds, Schema{
				"if":   Schema{"properties": Schema{"startHour": Schema{"const": h}}, "required": []any{"startHour"}},
				"then": Schema{"properties": Schema{"count": Schema{"maximum": 24 - h}}},
			})
		}
		bounds = append(bounds,
			Schema{"if": Schema{"not": given("startHour")}, "then": Schema{"properties": Schema{"count": Schema{"maximum": 24 - defaultStartHour}}}},
			Schema{"if": Schema{"not": given("count")}, "then": Schema{"properties": Schema{"startHour": Schema{"maximum": 24 - defaultCount}}}},
		)
		return Schema{"type": []any{"object", "null"}, "properties": props, "additionalProperties": false, "allOf": bounds,
			"description": "startHour + count is at most 24"}
	case CmdReserveSlot:
		return Schema{"type": "object", "additionalProperties": false, "required": reserveKeys,
			"properties": keyed(reserveKeys, Schema{"slotId": slotID, "hostName": hostNameSchema()})}
	case CmdCloseSlots, CmdUnattendSlots:
		return Schema{"type": []any{"object", "null"}, "maxProperties": 0, "description": "this command takes no data"}
	default:
		return Schema{"type": "object", "additionalProperties": false, "required": slotRefKeys,
			"properties": keyed(slotRefKeys, Schema{"slotId": slotID})}
	}
}

// ---- outcomes ----------------------------------------------------------------

// OutcomeSchema is the schema of an outcome on the results topic.
func OutcomeSchema() Schema {
	types := make([]any, len(commandTypes))
	for i, t := range commandTypes {
		types[i] = string(t)
	}
	rules := Schema{
		"commandId": str(Schema{"minLength": 1, "description": "the command's id; for bytes that are not a command, the message id"}),
		"correlationId": str(Schema{"minLength": 1,
			"description": "the command's correlationId, or the one emitd gave it: every event of the command carries it"}),
		"type":     str(Schema{"description": "the command type (as far as it could be read, for a dead-lettered command)"}),
		"status":   Schema{"enum": []any{OutcomeAccepted, OutcomeRejected, OutcomeDeadLettered}},
		"eventIds": Schema{"type": "array", "minItems": 2, "items": str(Schema{"pattern": uuidV4, "format": "uuid"}), "description": "accepted: each event's id, domain event then analytics copy, per change; absent when nothing changed"},
		"reason":   str(Schema{"minLength": 1, "description": "why the command was rejected or dead-lettered"}),
		"at":       str(Schema{"format": "date-time", "pattern": `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$`, "description": "when it was decided, UTC"}),
	}
	props := Schema{}
	var required []string
	t := reflect.TypeOf(Outcome{})
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		r, ok := rules[name]
		if !ok {
			panic("domain: outcome contract: no rule for key " + name)
		}
		props[name] = r
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	noEvents := Schema{"not": Schema{"required": []any{"eventIds"}}}
	return Schema{
		"$schema": JSONSchemaDialect, "$id": OutcomeSchemaID, "title": "Outcome",
		"type": "object", "properties": props, "required": required, "additionalProperties": false,
		"allOf": []any{
			Schema{"if": Schema{"properties": Schema{"status": Schema{"const": OutcomeAccepted}}},
				"then": Schema{"properties": Schema{"type": Schema{"enum": types}}, "not": Schema{"required": []any{"reason"}}}},
			Schema{"if": Schema{"properties": Schema{"status": Schema{"const": OutcomeRejected}}},
				"then": Schema{"properties": Schema{"type": Schema{"enum": types}}, "required": []any{"reason"}, "allOf": []any{noEvents}}},
			Schema{"if": Schema{"properties": Schema{"status": Schema{"const": OutcomeDeadLettered}}},
				"then": Schema{"required": []any{"reason"}, "allOf": []any{noEvents}}},
		},
	}
}
