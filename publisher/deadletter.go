package publisher

import (
	"crypto/sha256"
	"encoding/hex"
)

// Metadata keys of the poison context a dead-lettered command carries on top
// of its original metadata. Replay removes exactly these (and raises
// DLQReplays), so what goes back is the original message.
const (
	DLQReason       = "dlq_reason"
	DLQClass        = "dlq_class"
	DLQTopic        = "dlq_original_topic"
	DLQHandler      = "dlq_handler"
	DLQAttempts     = "dlq_attempts"
	DLQFirstFailure = "dlq_first_failure"
	DLQLastFailure  = "dlq_last_failure"
	DLQInstance     = "dlq_instance"
	DLQDigest       = "dlq_payload_sha256"
	// DLQReplays survives replay: it counts how often a message went back,
	// so a message that keeps failing cannot loop for ever.
	DLQReplays = "dlq_replays"
)

// PoisonContextKeys are the keys replay strips before re-publishing.
var PoisonContextKeys = []string{DLQReason, DLQClass, DLQTopic, DLQHandler, DLQAttempts,
	DLQFirstFailure, DLQLastFailure, DLQInstance, DLQDigest}

// Digest is the SHA-256 of a payload, hex encoded, as stored in DLQDigest.
func Digest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}
