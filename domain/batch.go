package domain

import (
	"context"
	"sort"
)

// BatchSource is the SlotSource of one batch of commands decided together
// in one transaction: each command sees the slots as the commands before it
// in the batch left them, so two commands for one slot are decided in the
// order they were queued, also inside one batch. It reads through the
// transaction what no earlier command touched.
type BatchSource struct {
	tx      Tx
	slots   map[string]Slot // latest state of every slot read or changed in this batch
	missing map[string]bool // looked up and not stored
}

// NewBatchSource starts an empty view over tx.
func NewBatchSource(tx Tx) *BatchSource {
	return &BatchSource{tx: tx, slots: map[string]Slot{}, missing: map[string]bool{}}
}

// Prefetch reads (and locks) the given slots in one round trip, so that a
// batch of single-slot commands costs one read, not one per command.
func (b *BatchSource) Prefetch(ctx context.Context, ids []string) error {
	var want []string
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] || b.known(id) {
			continue
		}
		seen[id] = true
		want = append(want, id)
	}
	if len(want) == 0 {
		return nil
	}
	// Sorted: instances that lock the same slots lock them in the same
	// order, so they wait for each other instead of deadlocking.
	sort.Strings(want)
	got, err := b.tx.Slots(ctx, want)
	if err != nil {
		return err
	}
	for _, id := range want {
		if s, ok := got[id]; ok {
			b.slots[id] = s
		} else {
			b.missing[id] = true
		}
	}
	return nil
}

func (b *BatchSource) known(id string) bool {
	_, ok := b.slots[id]
	return ok || b.missing[id]
}

// GetSlot implements SlotSource.
func (b *BatchSource) GetSlot(ctx context.Context, id string) (Slot, bool, error) {
	if !b.known(id) {
		if err := b.Prefetch(ctx, []string{id}); err != nil {
			return Slot{}, false, err
		}
	}
	s, ok := b.slots[id]
	return s, ok, nil
}

// ListSlots implements SlotSource: the stored slots with one of these
// statuses, as this batch has changed them.
func (b *BatchSource) ListSlots(ctx context.Context, statuses ...Status) ([]Slot, error) {
	stored, err := b.tx.ListSlots(ctx, statuses...)
	if err != nil {
		return nil, err
	}
	var out []Slot
	for _, s := range stored {
		if _, changed := b.slots[s.SlotID]; !changed {
			out = append(out, s)
		}
	}
	for _, s := range b.slots {
		if hasStatus(s.Status, statuses) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Apply makes a decision's new slot states visible to the commands after it.
func (b *BatchSource) Apply(d Decision) {
	for _, c := range d.Changes {
		b.slots[c.Slot.SlotID] = c.Slot
		delete(b.missing, c.Slot.SlotID)
	}
}

// TargetSlot is the slot a single-slot command (ReserveSlot, CancelSlot,
// CheckIn, CheckOut, OpenSlot) names, "" for the others or when its data
// cannot be read. It lets a batch read all its slots at once.
func (c Command) TargetSlot() string {
	switch c.Type {
	case CmdReserveSlot:
		d, err := decodeReserve(c.Data)
		if err != nil {
			return ""
		}
		return d.SlotID
	case CmdCancelSlot, CmdCheckIn, CmdCheckOut, CmdOpenSlot:
		d, err := decodeSlotRef(c.Data)
		if err != nil {
			return ""
		}
		return d.SlotID
	}
	return ""
}

// SlotWrite is what a batch writes of one slot: its final state, and the
// version the store must hold for it (0: the slot is new).
type SlotWrite struct {
	Slot Slot
	From int
}

// SlotWrites folds the slot changes of a batch into one write per slot, in
// the order each slot was first changed: a slot reserved and then checked
// in within one batch is written once, at its last state, from the version
// the store held before the batch. A store writes an UPDATE ... WHERE
// version = From for each, so that a change underneath is a conflict.
func SlotWrites(commits []Commit) []SlotWrite {
	var out []SlotWrite
	at := map[string]int{}
	for _, c := range commits {
		for _, s := range c.Slots {
			if i, ok := at[s.SlotID]; ok {
				out[i].Slot = s
				continue
			}
			at[s.SlotID] = len(out)
			out = append(out, SlotWrite{Slot: s, From: s.Version - 1})
		}
	}
	return out
}
