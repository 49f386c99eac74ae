package app

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
	"github.com/brainhq/brain/services/memory/store"
)

// migration says whether --migrate's background migration is still
// running. While it is, a schema behind this binary is expected, not an
// outage: health says migrations are running, calls that meet the missing
// schema say so too, and neither opens the breaker.
type migration struct{ running atomic.Bool }

func (m *migration) Running() bool { return m.running.Load() }

// probe is the postgres health check: the prober's Ping, except that while the
// migration runs a schema that is absent or older reads as
// store.ErrMigrating.
func probe(p *prober, m *migration) func(context.Context) error {
	return func(ctx context.Context) error {
		err := p.Ping(ctx)
		if err == nil || !m.Running() {
			return err
		}
		v, verr := p.SchemaVersion(ctx)
		if errors.Is(verr, store.ErrNotMigrated) || (verr == nil && v < store.SchemaVersion) {
			return fmt.Errorf("ping: %w (schema version %d, this binary expects %d)", store.ErrMigrating, v, store.SchemaVersion)
		}
		return err
	}
}

// missingSchema reports whether err says the schema lacks what a call
// needs: the version table, or a relation, column, function or object.
func missingSchema(err error) bool {
	if errors.Is(err, store.ErrNotMigrated) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "42703", "42883", "42704": // undefined table, column, function, object
		return true
	}
	return false
}

// gatedStore is the store as the handlers see it: while the migration runs,
// an error from the missing schema becomes store.ErrMigrating. PostgreSQL
// answered, so the guard counts it as a success, not toward the breaker.
type gatedStore struct {
	*store.Store
	m *migration
}

func (g gatedStore) gate(err error) error {
	if err == nil || !g.m.Running() || !missingSchema(err) {
		return err
	}
	return fmt.Errorf("%w (%v)", store.ErrMigrating, err)
}

func (g gatedStore) Write(ctx context.Context, eps []episode.Episode) ([]episode.Episode, error) {
	out, err := g.Store.Write(ctx, eps)
	return out, g.gate(err)
}

func (g gatedStore) Get(ctx context.Context, ns, id string) (episode.Episode, error) {
	ep, err := g.Store.Get(ctx, ns, id)
	return ep, g.gate(err)
}

func (g gatedStore) List(ctx context.Context, q store.ListQuery) ([]episode.Episode, string, error) {
	eps, next, err := g.Store.List(ctx, q)
	return eps, next, g.gate(err)
}

func (g gatedStore) RecordAccess(ctx context.Context, ns string, ids []string, at time.Time) (int, error) {
	n, err := g.Store.RecordAccess(ctx, ns, ids, at)
	return n, g.gate(err)
}

func (g gatedStore) Delete(ctx context.Context, ns, id string) (bool, error) {
	ok, err := g.Store.Delete(ctx, ns, id)
	return ok, g.gate(err)
}

func (g gatedStore) DeleteNamespace(ctx context.Context, ns string) (int64, error) {
	n, err := g.Store.DeleteNamespace(ctx, ns)
	return n, g.gate(err)
}

func (g gatedStore) Stats(ctx context.Context, ns string) (store.Stats, error) {
	st, err := g.Store.Stats(ctx, ns)
	return st, g.gate(err)
}

func (g gatedStore) Recall(ctx context.Context, q recall.Query) ([]recall.Result, error) {
	rs, err := g.Store.Recall(ctx, q)
	return rs, g.gate(err)
}

func (g gatedStore) GetWorkingMemory(ctx context.Context, ns, session string) (episode.WorkingMemory, error) {
	wm, err := g.Store.GetWorkingMemory(ctx, ns, session)
	return wm, g.gate(err)
}

func (g gatedStore) PutWorkingMemory(ctx context.Context, ns, session string, expected int64, items []episode.WorkingMemoryItem) (episode.WorkingMemory, error) {
	wm, err := g.Store.PutWorkingMemory(ctx, ns, session, expected, items)
	return wm, g.gate(err)
}

func (g gatedStore) ClearWorkingMemory(ctx context.Context, ns, session string) (bool, int64, error) {
	ok, v, err := g.Store.ClearWorkingMemory(ctx, ns, session)
	return ok, v, g.gate(err)
}

func (g gatedStore) DeleteWorkingMemories(ctx context.Context, ns string) (int64, error) {
	n, err := g.Store.DeleteWorkingMemories(ctx, ns)
	return n, g.gate(err)
}
