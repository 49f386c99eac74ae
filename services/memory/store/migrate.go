package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"
)

// ErrMigrating: the schema is behind this binary while a migration of it
// is running (memory --migrate), so the call may succeed shortly.
var ErrMigrating = errors.New("memory schema migrations are running; retry shortly")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersion is the schema version this binary expects: the number of
// embedded migrations.
const SchemaVersion int64 = 6

// versionTable is tern's bookkeeping table (one row: the applied version).
const versionTable = "public.memory_schema_version"

// Migrate applies the embedded migrations that conn's database lacks, each
// in its own transaction, under tern's advisory lock (concurrent migrators
// wait rather than race). It refuses a database newer than this binary.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("migrate: prepare version table: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("migrate: load embedded migrations: %w", err)
	}
	if n := int64(len(m.Migrations)); n != SchemaVersion {
		return fmt.Errorf("migrate: %d embedded migrations, SchemaVersion says %d", n, SchemaVersion)
	}
	current, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if int64(current) > SchemaVersion {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", current, SchemaVersion)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate from version %d to %d: %w", current, SchemaVersion, err)
	}
	return nil
}

// readVersion reads the applied schema version; 0 with ErrNotMigrated when
// the version table does not exist.
func readVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	var v int32
	err := q.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, ErrNotMigrated
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int64(v), nil
}
