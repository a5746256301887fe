package sqs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/publisher"
)

// Message attribute layout, shared with the SNS adapter (SNS hands its message
// attributes to subscribed SQS queues as SQS message attributes, with the same
// limit of 10).
const (
	// MaxAttributes is how many message attributes SQS accepts on one message
	// (and SNS delivers to an SQS subscription with raw message delivery).
	MaxAttributes = 10
	// UUIDAttribute carries the Watermill message UUID. It is the name
	// watermill-aws uses, so its own unmarshaler reads our messages too.
	UUIDAttribute = "_watermill_message_uuid"
	// PackedAttribute carries, as one JSON object of strings, the metadata that
	// cannot travel as attributes of its own: keys past the limit, keys that
	// are not valid attribute names, empty values.
	PackedAttribute = "watermill-metadata"
)

// priority lists the metadata that gets an attribute of its own first: what
// SNS filter policies and native consumers look at.
var priority = []string{
	publisher.MetaSource,
	publisher.MetaDetailType,
	publisher.MetaEventID,
	publisher.MetaCorrelationID,
	publisher.MetaSlotID,
}

// EncodeAttributes maps a message UUID and its metadata to at most
// MaxAttributes string attributes (name -> value). Metadata keys get an
// attribute each, priority keys first, then the rest by name; if they do not
// all fit (or some cannot be attributes), the ones left over are packed into
// PackedAttribute. DecodeAttributes undoes it exactly.
func EncodeAttributes(uuid string, md message.Metadata) map[string]string {
	attrs := make(map[string]string, len(md)+1)
	attrs[UUIDAttribute] = uuid

	direct := make([]string, 0, len(md))
	packed := make(map[string]string)
	seen := make(map[string]bool, len(priority))
	for _, k := range priority {
		seen[k] = true
		if v, ok := md[k]; ok {
			if directOK(k, v) {
				direct = append(direct, k)
			} else {
				packed[k] = v
			}
		}
	}
	rest := make([]string, 0, len(md))
	for k := range md {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		if directOK(k, md[k]) {
			direct = append(direct, k)
		} else {
			packed[k] = md[k]
		}
	}

	budget := MaxAttributes - 1 // the UUID
	if len(packed) > 0 || len(direct) > budget {
		budget-- // the packed attribute
	}
	if len(direct) > budget {
		for _, k := range direct[budget:] {
			packed[k] = md[k]
		}
		direct = direct[:budget]
	}
	for _, k := range direct {
		attrs[k] = md[k]
	}
	if len(packed) > 0 {
		attrs[PackedAttribute] = pack(packed)
	}
	return attrs
}

// bytesPrefix starts a packed attribute that carries its entries as raw
// bytes: JSON would turn bytes that are not UTF-8 (a Kafka or NATS header,
// an SQS binary attribute) into U+FFFD, and a dead letter must keep its
// metadata exactly. A JSON object never starts so.
const bytesPrefix = "bytes:"

// pack encodes the entries that do not travel as attributes of their own:
// a JSON object of strings, or, when a key or value is not valid UTF-8, a
// JSON list of [key, value] byte pairs (base64 in JSON) after bytesPrefix.
func pack(packed map[string]string) string {
	for k, v := range packed {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			keys := make([]string, 0, len(packed))
			for k := range packed {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			pairs := make([][2][]byte, 0, len(packed))
			for _, k := range keys {
				pairs = append(pairs, [2][]byte{[]byte(k), []byte(packed[k])})
			}
			b, _ := json.Marshal(pairs) // byte slices always encode
			return bytesPrefix + string(b)
		}
	}
	b, _ := json.Marshal(packed) // a map of valid strings always encodes
	return string(b)
}

func unpack(v string, md message.Metadata) error {
	if raw, ok := strings.CutPrefix(v, bytesPrefix); ok {
		var pairs [][2][]byte
		if err := json.Unmarshal([]byte(raw), &pairs); err != nil {
			return err
		}
		for _, p := range pairs {
			md[string(p[0])] = string(p[1])
		}
		return nil
	}
	var packed map[string]string
	if err := json.Unmarshal([]byte(v), &packed); err != nil {
		return err
	}
	for pk, pv := range packed {
		md[pk] = pv
	}
	return nil
}

// DecodeAttributes is the inverse of EncodeAttributes: it returns the UUID
// attribute (empty if absent) and the metadata, with PackedAttribute unpacked.
func DecodeAttributes(attrs map[string]string) (uuid string, md message.Metadata, err error) {
	md = make(message.Metadata, len(attrs))
	for k, v := range attrs {
		switch k {
		case UUIDAttribute:
			uuid = v
		case PackedAttribute:
			if err := unpack(v, md); err != nil {
				return "", nil, fmt.Errorf("attribute %s: %w", PackedAttribute, err)
			}
		default:
			md[k] = v
		}
	}
	return uuid, md, nil
}

// directOK says whether metadata k=v can travel as an attribute of its own:
// SQS and SNS refuse empty values and names that break their rules.
func directOK(k, v string) bool {
	return v != "" && validName(k) && validValue(v)
}

// validName follows the SQS message attribute name rules: 1-256 of
// A-Za-z0-9_-. ; no leading/trailing or double period; no AWS./Amazon. prefix
// (any case); and not one of our own names.
func validName(k string) bool {
	if k == "" || len(k) > 256 || k == UUIDAttribute || k == PackedAttribute {
		return false
	}
	if k[0] == '.' || k[len(k)-1] == '.' || strings.Contains(k, "..") {
		return false
	}
	lower := strings.ToLower(k)
	if strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// validValue: the characters SQS accepts in a String value
// (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF).
func validValue(v string) bool {
	if !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		switch {
		case r == 0x9, r == 0xA, r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
