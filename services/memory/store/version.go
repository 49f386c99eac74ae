package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ReadSchemaVersion reads the applied schema version over one connection,
// for `memory doctor`; ErrNotMigrated when the schema is absent.
func ReadSchemaVersion(ctx context.Context, conn *pgx.Conn) (int64, error) {
	return readVersion(ctx, conn)
}
