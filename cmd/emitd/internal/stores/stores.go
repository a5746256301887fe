// Package stores opens the state store the configuration names (SQLite or
// PostgreSQL) behind the one interface the daemon and the operator
// commands use.
package stores

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/emitd/emitd/adapters/postgres"
	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Store is everything emitd needs of a state store.
type Store interface {
	domain.Store
	publisher.Outbox
	publisher.OutcomeOutbox
	publisher.DeadLetterStore
	publisher.EventReplayStore
	publisher.Leaser
	publisher.Reporter
	Prune(ctx context.Context, before time.Time) (publisher.Pruned, error)
	OutboxLen(ctx context.Context) (int, error)
	Ping(ctx context.Context) error
	Close() error
}

// Role says who opens the store.
type Role int

const (
	// Daemon: `emitd serve`. On SQLite it takes the data directory's lock
	// (one daemon per directory) and creates the store if there is none.
	Daemon Role = iota
	// Operator: `emitd dlq`, `emitd replay`, beside a running daemon. On
	// SQLite it never creates a store: run in the wrong directory, it would
	// move the poison queue into a stray file the daemon never reads.
	Operator
)

// Open opens the configured store. Its errors name what to fix, never a
// password.
func Open(ctx context.Context, cfg *configs.Config, role Role) (Store, error) {
	// Each case returns a nil interface on error, never a nil pointer in
	// one: callers check the store against nil to know what to close.
	switch cfg.Store.Driver {
	case configs.StorePostgres:
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := postgres.Open(octx, cfg.Store.URL)
		if err != nil {
			return nil, err
		}
		return s, nil
	case configs.StoreSQLite:
		if role == Operator {
			if _, err := os.Stat(filepath.Join(cfg.DataDir, sqlite.FileName)); err != nil {
				return nil, fmt.Errorf("no emitd store in dataDir %q (%v): run where `emitd serve` runs, or set dataDir in --config", cfg.DataDir, err)
			}
		}
		s, err := sqlite.Open(cfg.DataDir, sqlite.Options{Exclusive: role == Daemon, Synchronous: cfg.Store.Synchronous})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("store.driver %q is not available in this build", cfg.Store.Driver)
}
