package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brainhq/brain/services/memory/store"
)

// prober checks PostgreSQL over a connection of its own, not one of the
// traffic pool's: with every pool connection busy, a probe waiting its turn
// would fail and open the breaker, making overload look like an outage. The
// connection is opened on first use and again after any failure, so a probe
// never reuses a connection that broke.
type prober struct {
	cfg *pgx.ConnConfig

	mu   sync.Mutex // the health loop runs one probe at a time; this makes sure
	conn *pgx.Conn
}

func newProber(cfg *pgx.ConnConfig) *prober { return &prober{cfg: cfg} }

// closeTimeout bounds the goodbye to a server that may not be listening.
const closeTimeout = 100 * time.Millisecond

// Ping checks that PostgreSQL answers and carries the schema version this
// binary expects; the error says which part failed.
func (p *prober) Ping(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		p.conn = conn
	}
	v, err := store.ReadSchemaVersion(ctx, p.conn)
	if err != nil {
		if !errors.Is(err, store.ErrNotMigrated) { // an answer keeps the connection
			p.closeLocked()
		}
		return fmt.Errorf("ping: %w", err)
	}
	if v != store.SchemaVersion {
		return fmt.Errorf("ping: schema version %d, this binary expects %d (run `memory migrate`)", v, store.SchemaVersion)
	}
	return nil
}

// SchemaVersion reads the applied schema version over the probe's
// connection (opened by Ping).
func (p *prober) SchemaVersion(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		return 0, fmt.Errorf("schema version: %w", errProbeClosed)
	}
	return store.ReadSchemaVersion(ctx, p.conn)
}

// errProbeClosed: the probe's connection is not open (Ping failed to open it).
var errProbeClosed = errors.New("probe connection not open")

// Close closes the probe's connection.
func (p *prober) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *prober) closeLocked() {
	if p.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = p.conn.Close(ctx)
	p.conn = nil
}
