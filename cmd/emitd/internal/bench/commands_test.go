package bench

import (
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// commands are the CreateSlots commands of one run, position 0 being the
// warm-up command. Each creates one slot at a (date, hour) of its own, from
// 2030-01-01 00:00 on, one hour apart, so none is refused and each causes
// exactly one Created event (and its analytics copy).
type commands struct {
	msgs  []*message.Message
	index map[string]int // correlation id -> position
}

// correlationKey is Watermill's metadata key for correlation ids
// (middleware.CorrelationIDMetadataKey; that package would pull in the
// router's dependencies for one constant).
const correlationKey = "correlation_id"

var firstSlotDay = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// newCommands makes n commands plus the warm-up. Each has a fresh command
// id and a correlation id of its own, which every outcome and event of the
// command carries: that is how the readers match them.
func newCommands(run string, n int) commands {
	c := commands{index: make(map[string]int, n+1)}
	for i := range n + 1 {
		id := uuid.NewString()
		corr := fmt.Sprintf("%s-%d", run, i)
		day := firstSlotDay.AddDate(0, 0, i/24).Format(time.DateOnly)
		payload := fmt.Sprintf(`{"type":"CreateSlots","id":%q,"correlationId":%q,"data":{"date":%q,"startHour":%d,"count":1}}`,
			id, corr, day, i%24)
		msg := message.NewMessage(id, []byte(payload))
		// As `emitd send` does: Watermill's correlation key beside the body's.
		msg.Metadata.Set(correlationKey, corr)
		c.msgs = append(c.msgs, msg)
		c.index[corr] = i
	}
	return c
}
