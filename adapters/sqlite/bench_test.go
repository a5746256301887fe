package sqlite_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/domain"
)

// BenchmarkBatch is the store's share of a command: one batch transaction
// records 256 CreateSlots-like commands (a record, a slot, two envelopes and
// an outcome each), as the pipeline writes them, with the default
// synchronous=FULL and with NORMAL.
func BenchmarkBatch(b *testing.B) {
	f := domain.EnvelopeFactory{Meta: domain.DefaultMetadata(), DomainBus: "reservation", AnalyticsBus: "analytics"}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, sync := range []string{sqlite.SyncFull, sqlite.SyncNormal} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			s, err := sqlite.Open(b.TempDir(), sqlite.Options{Exclusive: true, Synchronous: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const perBatch = 256
			var cpu time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				commits := make([]domain.Commit, perBatch)
				ids := make([]string, perBatch)
				for j := range commits {
					start := now.Add(time.Duration(i*perBatch+j) * time.Hour)
					slot := domain.Slot{SlotID: uuid.NewString(), Status: domain.StatusOpen, Version: 1, CreatedAt: now, UpdatedAt: now,
						TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}
					envs, err := f.Events(domain.Decision{Changes: []domain.Change{{Slot: slot, Event: domain.EventCreated}}}, uuid.NewString(), now)
					if err != nil {
						b.Fatal(err)
					}
					ids[j] = uuid.NewString()
					commits[j] = domain.Commit{Record: true, Slots: []domain.Slot{slot}, Envelopes: envs,
						Outcome: domain.Outcome{CommandID: ids[j], CorrelationID: "c", Status: domain.OutcomeAccepted, EventIDs: []string{envs[0].ID, envs[1].ID}, At: now}}
				}
				b.StartTimer()
				c0 := cpuTime()
				if err := s.Batch(context.Background(), func(ctx context.Context, tx domain.Tx) error {
					if _, err := tx.Processed(ctx, ids); err != nil {
						return err
					}
					return tx.Save(ctx, commits)
				}); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
			}
			b.ReportMetric(float64(perBatch*b.N)/b.Elapsed().Seconds(), "commands/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(perBatch*b.N), "cpu-µs/command")
		})
	}
	_ = fmt.Sprint
}

// cpuTime is the process's CPU time (user and system): steadier than the
// wall clock on a machine that does other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
