package sqlite

import "database/sql"

// DB exposes the store's connection to its own tests (pragmas, raw rows).
func (s *Store) DB() *sql.DB { return s.db }
