package sqs_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/sqs"
)

func TestAttributesRoundTrip(t *testing.T) {
	base := message.Metadata{"source": "orders", "detail-type": "OrderPlaced", "event-id": "e1", "correlation_id": "c1", "slot-id": "s1"}
	with := func(extra map[string]string) message.Metadata {
		md := message.Metadata{}
		for k, v := range base {
			md[k] = v
		}
		for k, v := range extra {
			md[k] = v
		}
		return md
	}
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("x-%02d", i)] = fmt.Sprint("v", i)
		}
		return m
	}
	cases := []struct {
		name       string
		md         message.Metadata
		wantPacked bool
	}{
		{"none", message.Metadata{}, false},
		{"five", with(nil), false},
		{"nine fit", with(many(4)), false},
		{"ten overflow", with(many(5)), true},
		{"fourteen", with(many(9)), true},
		{"empty value", with(map[string]string{"empty": ""}), true},
		{"bad names", with(map[string]string{"AWS.x": "1", "amazon.y": "2", "has space": "3", ".dot": "4", "a..b": "5", "ünï": "6"}), true},
		{"our own names", with(map[string]string{sqs.UUIDAttribute: "u", sqs.PackedAttribute: "p"}), true},
		{"odd values", with(map[string]string{"ctl": "a\x00b\x1f", "json": `{"a":"\"q\""}`, "nl": "a\nb"}), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			attrs := sqs.EncodeAttributes("uuid-1", tc.md)
			if len(attrs) > sqs.MaxAttributes {
				t.Fatalf("%d attributes, SQS allows %d: %v", len(attrs), sqs.MaxAttributes, attrs)
			}
			if _, packed := attrs[sqs.PackedAttribute]; packed != tc.wantPacked {
				t.Fatalf("packed attribute present = %v, want %v: %v", packed, tc.wantPacked, attrs)
			}
			for _, k := range []string{"source", "detail-type", "event-id"} {
				if v, ok := tc.md[k]; ok && attrs[k] != v {
					t.Fatalf("%s should travel as its own attribute: %v", k, attrs)
				}
			}
			for k, v := range attrs {
				if v == "" {
					t.Fatalf("attribute %s is empty; SQS refuses that", k)
				}
			}
			uuid, md, err := sqs.DecodeAttributes(attrs)
			if err != nil {
				t.Fatal(err)
			}
			if uuid != "uuid-1" {
				t.Fatalf("uuid %q", uuid)
			}
			if !reflect.DeepEqual(md, tc.md) && !(len(md) == 0 && len(tc.md) == 0) {
				t.Fatalf("metadata changed:\n got %v\nwant %v", md, tc.md)
			}
		})
	}
}

// Metadata that is not valid UTF-8 (a Kafka or NATS header, an SQS binary
// attribute) cannot travel as an attribute of its own, nor inside JSON:
// it is packed as bytes and comes back exactly.
func TestAttributesKeepBytesThatAreNotUTF8(t *testing.T) {
	md := message.Metadata{"correlation_id": "\x96", "raw\xff": "v", "ok": "fine"}
	uuid, got, err := sqs.DecodeAttributes(sqs.EncodeAttributes("u-1", md))
	if err != nil || uuid != "u-1" {
		t.Fatalf("decode: %q, %v", uuid, err)
	}
	if len(got) != len(md) {
		t.Fatalf("got %q, want %q", got, md)
	}
	for k, v := range md {
		if got[k] != v {
			t.Errorf("%q = %q, want %q", k, got[k], v)
		}
	}
}
