package configs

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/emitd/emitd/configs/redact"
)

// checkPostgresURL says what is wrong with a store.url, without quoting
// it (it may hold a password): pgx parses it as the store will.
func checkPostgresURL(dsn string) error {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") && !strings.Contains(dsn, "=") {
		return errors.New("want a libpq URL (postgres://user@host:5432/database) or key=value string (host=... dbname=...)")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx writes the password as xxxxx in its message, as best it can;
		// what it wraps (a net/url error) may still quote it.
		return redact.URLError(err, dsn)
	}
	if cfg.Database == "" {
		return errors.New("names no database (emitd creates its tables, never the database)")
	}
	return nil
}
