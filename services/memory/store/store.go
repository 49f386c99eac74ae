package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brainhq/brain/services/memory/episode"
)

// Errors callers branch on.
var (
	// ErrNotFound: the namespace has no episode with that id.
	ErrNotFound = errors.New("episode not found")
	// ErrBadPageToken: a List page token that this store did not issue for
	// the same namespace and filters.
	ErrBadPageToken = errors.New("invalid page token")
	// ErrInvalid: input the database cannot store (bad UUID, NUL byte,
	// invalid UTF-8, importance outside 0..1, oversize fields).
	ErrInvalid = errors.New("invalid input")
	// ErrOutcomeUnknown: a write's COMMIT was sent but its answer never
	// came (deadline, connection lost): it may or may not be stored. A retry
	// with the same ids stores it exactly once either way.
	ErrOutcomeUnknown = errors.New("commit sent but not confirmed, the write may or may not be stored")
	// ErrNotMigrated: the database has no memory schema.
	ErrNotMigrated = errors.New("memory schema not migrated (run `memory migrate`)")
)

// Store is the PostgreSQL side of the memory service.
type Store struct {
	pool *pgxpool.Pool
	// eraseBatch overrides EraseBatchEpisodes and EraseBatchBytes when
	// set (tests use small batches).
	eraseBatch struct{ episodes, bytes int }
}

// New returns a Store over pool. The pool's lifetime is the caller's.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// SchemaVersion reads the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	return readVersion(ctx, s.pool)
}

// Ping checks that PostgreSQL answers and carries the schema version this
// binary expects, in one cheap query. The error says which part failed.
func (s *Store) Ping(ctx context.Context) error {
	v, err := readVersion(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if v != SchemaVersion {
		return fmt.Errorf("ping: schema version %d, this binary expects %d (run `memory migrate`)", v, SchemaVersion)
	}
	return nil
}

// episodeColumns is what every read returns, in scanEpisode's order.
const episodeColumns = `e.namespace, e.id::text, e.session_id, e.content, e.importance, e.created_at, e.metadata,
	e.affect_valence, e.affect_arousal, e.affect_intensity, e.access_count, e.last_accessed_at, e.speaker`

func scanEpisode(row pgx.Row, extra ...any) (episode.Episode, error) {
	var (
		ep         episode.Episode
		meta       map[string]string
		va, ar, in *float64
		last       *time.Time
	)
	dest := append([]any{&ep.Namespace, &ep.ID, &ep.SessionID, &ep.Content, &ep.Importance, &ep.CreatedAt, &meta,
		&va, &ar, &in, &ep.AccessCount, &last, &ep.Speaker}, extra...)
	if err := row.Scan(dest...); err != nil {
		return episode.Episode{}, err
	}
	if len(meta) > 0 {
		ep.Metadata = meta
	}
	if va != nil && ar != nil && in != nil {
		ep.Affect = &episode.Affect{Valence: *va, Arousal: *ar, Intensity: *in}
	}
	ep.CreatedAt = ep.CreatedAt.UTC()
	if last != nil {
		t := last.UTC()
		ep.LastAccessedAt = &t
	}
	return ep, nil
}

func validText(field, s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, field, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, field)
	}
	return nil
}

// storable checks what the database would reject, so callers get ErrInvalid
// rather than a PostgreSQL error. Business rules are the api's.
func storable(i int, ep episode.Episode) error {
	if ep.Namespace == "" {
		return fmt.Errorf("%w: episode %d: empty namespace", ErrInvalid, i)
	}
	checks := []struct {
		field, value string
		max          int
	}{
		{"namespace", ep.Namespace, episode.MaxNamespaceBytes},
		{"session_id", ep.SessionID, episode.MaxSessionBytes},
		{"speaker", ep.Speaker, episode.MaxSpeakerBytes},
		{"content", ep.Content, episode.MaxContentBytes},
	}
	for _, c := range checks {
		if err := validText(c.field, c.value, c.max); err != nil {
			return fmt.Errorf("episode %d: %w", i, err)
		}
	}
	for k, v := range ep.Metadata {
		if err := validText("metadata key", k, episode.MaxMetadataKeyBytes); err != nil {
			return fmt.Errorf("episode %d: %w", i, err)
		}
		if err := validText("metadata value", v, episode.MaxMetadataValueBytes); err != nil {
			return fmt.Errorf("episode %d: %w", i, err)
		}
	}
	if !(ep.Importance >= 0 && ep.Importance <= 1) {
		return fmt.Errorf("%w: episode %d: importance %v outside 0..1", ErrInvalid, i, ep.Importance)
	}
	if a := ep.Affect; a != nil {
		for _, v := range []float64{a.Valence, a.Arousal, a.Intensity} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: episode %d: affect is not finite", ErrInvalid, i)
			}
		}
	}
	return nil
}

// lockNamespaces takes the namespace_stats rows of nss (creating them when
// absent) in key order. Every statement that changes episodes runs it
// first, so the triggers' later row locks are always taken by a
// transaction that already owns its namespaces: no lock-order deadlocks.
const lockNamespacesSQL = `INSERT INTO namespace_stats AS s (namespace)
SELECT DISTINCT n FROM unnest($1::text[]) AS n ORDER BY n
ON CONFLICT (namespace) DO UPDATE SET episode_count = s.episode_count`

// lockNamespaceSQL locks one existing namespace (deletes never create one).
const lockNamespaceSQL = `SELECT 1 FROM namespace_stats WHERE namespace = $1 FOR UPDATE`

// queueStatementTimeout lets the statements of this transaction run as long
// as ctx allows: the pool's statement_timeout is a backstop sized for one
// ordinary query, and a large write's budget (given by the caller's
// deadline) may be longer. Without a deadline the pool's limit stays; it
// reports whether it queued a statement.
func queueStatementTimeout(ctx context.Context, batch *pgx.Batch) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return false
	}
	// A little past the deadline: the client gives up first and reports it.
	ms := time.Until(dl).Milliseconds() + 100
	batch.Queue(`SELECT set_config('statement_timeout', $1, true)`, strconv.FormatInt(max(ms, 1), 10))
	return true
}

// writeSQL upserts a batch in key order (so concurrent overlapping batches
// lock rows in the same order). A row written without created_at gets the
// transaction time plus its position in the batch in microseconds, so turns
// written together keep their order (recall's conversational context reads
// a session in created_at order); a retry of it keeps the stored
// created_at, access count and last access. ($12 is the batch's length:
// times in [now, now + $12 µs) were assigned here, not given.)
const writeSQL = `INSERT INTO episodes AS e (namespace, id, session_id, content, importance, created_at, metadata,
	affect_valence, affect_arousal, affect_intensity, speaker)
SELECT r.ns, r.id, r.sess, r.content, r.imp, coalesce(r.created, now() + (r.ord - 1) * interval '1 microsecond'),
	r.meta::jsonb, r.av, r.aa, r.ai, r.speaker
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[], $7::text[],
	$8::float8[], $9::float8[], $10::float8[], $11::text[]) WITH ORDINALITY
	AS r(ns, id, sess, content, imp, created, meta, av, aa, ai, speaker, ord)
ORDER BY r.ns, r.id
ON CONFLICT (namespace, id) DO UPDATE SET
	session_id = excluded.session_id, content = excluded.content, importance = excluded.importance,
	speaker = excluded.speaker,
	created_at = CASE WHEN excluded.created_at >= now() AND excluded.created_at < now() + $12::int * interval '1 microsecond'
		THEN e.created_at ELSE excluded.created_at END,
	metadata = excluded.metadata, affect_valence = excluded.affect_valence,
	affect_arousal = excluded.affect_arousal, affect_intensity = excluded.affect_intensity
RETURNING ` + episodeColumns

// Write stores a batch in one transaction, all or nothing: ids are assigned
// (UUID v4) when empty, created_at is the transaction time (plus the
// position in the batch, in µs) when zero, and an existing (namespace, id)
// is updated in place, so retries store one copy.
// It returns the stored episodes in input order; an id given twice in one
// batch is stored once, from its last occurrence.
func (s *Store) Write(ctx context.Context, eps []episode.Episode) ([]episode.Episode, error) {
	if len(eps) == 0 {
		return nil, nil
	}
	n := len(eps)
	var (
		nss, ids, sessions, contents, metas = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		speakers                            = make([]string, 0, n)
		imps                                = make([]float64, 0, n)
		created                             = make([]*time.Time, 0, n)
		va, aa, ai                          = make([]*float64, 0, n), make([]*float64, 0, n), make([]*float64, 0, n)
		keys                                = make([]string, n)
		slot                                = make(map[string]int, n)
	)
	for i, ep := range eps {
		if err := storable(i, ep); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		id := ep.ID
		if id == "" {
			id = uuid.NewString()
		} else {
			u, err := uuid.Parse(id)
			if err != nil {
				return nil, fmt.Errorf("write: %w: episode %d: id %q is not a UUID", ErrInvalid, i, id)
			}
			id = u.String()
		}
		keys[i] = ep.Namespace + "\x00" + id
		meta := ep.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		mj, err := json.Marshal(meta)
		if err != nil {
			return nil, fmt.Errorf("write: episode %d metadata: %w", i, err)
		}
		var at *time.Time
		if !ep.CreatedAt.IsZero() {
			t := ep.CreatedAt
			at = &t
		}
		var v, ar, in *float64
		if a := ep.Affect; a != nil {
			v, ar, in = &a.Valence, &a.Arousal, &a.Intensity
		}
		if j, dup := slot[keys[i]]; dup {
			// Last occurrence wins; ON CONFLICT cannot touch a row twice.
			sessions[j], contents[j], imps[j], created[j], metas[j] = ep.SessionID, ep.Content, ep.Importance, at, string(mj)
			va[j], aa[j], ai[j], speakers[j] = v, ar, in, ep.Speaker
			continue
		}
		slot[keys[i]] = len(nss)
		nss, ids, sessions, contents = append(nss, ep.Namespace), append(ids, id), append(sessions, ep.SessionID), append(contents, ep.Content)
		imps, created, metas = append(imps, ep.Importance), append(created, at), append(metas, string(mj))
		va, aa, ai = append(va, v), append(aa, ar), append(ai, in)
		speakers = append(speakers, ep.Speaker)
	}

	stored, err := s.writeTx(ctx, nss, ids, sessions, contents, imps, created, metas, va, aa, ai, speakers)
	if err != nil {
		return nil, fmt.Errorf("write %d episodes: %w", len(eps), err)
	}
	out := make([]episode.Episode, n)
	for i, k := range keys {
		ep, ok := stored[k]
		if !ok {
			return nil, fmt.Errorf("write: episode %d missing from the stored rows", i)
		}
		out[i] = ep
	}
	return out, nil
}

// writeTx runs the upsert in an explicit transaction: BEGIN, then the
// namespace locks and the upsert in one round trip, then COMMIT on its own.
// So a failure before COMMIT was sent is known to be rolled back (the server
// never commits a transaction it was not told to), and only a failure while
// COMMIT is on its way or awaiting its answer is of unknown outcome
// (ErrOutcomeUnknown). One implicit-transaction batch cannot tell the two
// apart: PostgreSQL commits it at the end of the batch, even after the
// client gave up on it.
func (s *Store) writeTx(ctx context.Context, nss, ids, sessions, contents []string, imps []float64,
	created []*time.Time, metas []string, va, aa, ai []*float64, speakers []string) (map[string]episode.Episode, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	// After a failed COMMIT the transaction is closed and this is a no-op;
	// after any other failure it ends the transaction (or the connection).
	defer func() { _ = tx.Rollback(ctx) }()
	batch := &pgx.Batch{}
	// First, so the upsert runs under it (until the transaction ends).
	timed := queueStatementTimeout(ctx, batch)
	batch.Queue(lockNamespacesSQL, nss)
	batch.Queue(writeSQL, nss, ids, sessions, contents, imps, created, metas, va, aa, ai, speakers, len(nss))
	br := tx.SendBatch(ctx, batch)
	stored := make(map[string]episode.Episode, len(nss))
	err = func() error {
		if timed {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("set statement timeout: %w", err)
			}
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("lock namespaces: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			ep, err := scanEpisode(rows)
			if err != nil {
				return err
			}
			stored[ep.Namespace+"\x00"+ep.ID] = ep
		}
		return rows.Err()
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// When COMMIT cannot be sent, the write is rolled back for sure. (pgx's
	// own "not sent" mark, SafeToRetry, cannot be trusted after the call: it
	// also reports a connection that closed while COMMIT awaited its answer.)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("commit not sent: %w", err)
	}
	if tx.Conn().IsClosed() {
		return nil, fmt.Errorf("commit not sent: %w", net.ErrClosed)
	}
	if err := tx.Commit(ctx); err != nil {
		if commitRefused(err) {
			return nil, fmt.Errorf("commit: %w", err)
		}
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return stored, nil
}

// commitRefused reports whether a COMMIT that was sent and failed is known
// to have been rolled back: PostgreSQL answered it with an ERROR (or with
// ROLLBACK). A FATAL answer is not a refusal: a server shutting down (or
// crashing) sends it to every connection, also to one whose COMMIT it had
// just written to the WAL. Anything else (deadline, lost connection, pgx's
// "conn closed") leaves the outcome unknown.
func commitRefused(err error) bool {
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	sev := pgErr.SeverityUnlocalized
	if sev == "" { // servers before 9.6 send only the localized one
		sev = pgErr.Severity
	}
	return sev == "ERROR"
}

// Get returns one episode, ErrNotFound when the namespace has no such id
// (a malformed id is simply not found).
func (s *Store) Get(ctx context.Context, ns, id string) (episode.Episode, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return episode.Episode{}, fmt.Errorf("get %q in %q: %w", id, ns, ErrNotFound)
	}
	ep, err := scanEpisode(s.pool.QueryRow(ctx,
		`SELECT `+episodeColumns+` FROM episodes e WHERE e.namespace = $1 AND e.id = $2`, ns, u.String()))
	if errors.Is(err, pgx.ErrNoRows) {
		return episode.Episode{}, fmt.Errorf("get %q in %q: %w", id, ns, ErrNotFound)
	}
	if err != nil {
		return episode.Episode{}, fmt.Errorf("get %q in %q: %w", id, ns, err)
	}
	return ep, nil
}

// Delete forgets one episode; false when there was none (also for a
// malformed id), so retries are safe.
func (s *Store) Delete(ctx context.Context, ns, id string) (bool, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return false, nil
	}
	n, err := s.deleteWhere(ctx, Purge{Namespace: ns, ID: u.String()}, `DELETE FROM episodes WHERE namespace = $1 AND id = $2`, ns, u.String())
	if err != nil {
		return false, fmt.Errorf("delete %q in %q: %w", id, ns, err)
	}
	return n > 0, nil
}

// Bounds of one erase transaction (DeleteNamespaceBatch): its work (the
// index entries it removes) grows with the content it deletes, so both
// the episodes and their bytes are bounded, which keeps every batch far
// inside one query's time whatever the namespace's size.
const (
	EraseBatchEpisodes = 5000
	EraseBatchBytes    = 1 << 20
)

// eraseBatchSQL deletes the first episodes of a namespace in id order, at
// most $2 of them and, past the first, at most $3 bytes of content in all
// (octet_length reads a stored value's size without detoasting it).
const eraseBatchSQL = `DELETE FROM episodes e USING (
	SELECT id FROM (
		SELECT id, row_number() OVER w AS i, sum(octet_length(content)) OVER w AS upto
		FROM (SELECT id, content FROM episodes WHERE namespace = $1 ORDER BY id LIMIT $2) x
		WINDOW w AS (ORDER BY id)
	) y WHERE i = 1 OR upto <= $3
) b
WHERE e.namespace = $1 AND e.id = b.id`

// DeleteNamespaceBatch erases up to EraseBatchEpisodes episodes of ns (and
// EraseBatchBytes of their content) with their index entries, in one short
// transaction, and returns how many it erased: 0 when none are left. Each
// batch commits on its own, so an erase cut short keeps what it erased, and
// calling again goes on where it stopped.
func (s *Store) DeleteNamespaceBatch(ctx context.Context, ns string) (int64, error) {
	n, err := s.deleteWhere(ctx, Purge{Namespace: ns}, eraseBatchSQL, ns, s.eraseEpisodes(), s.eraseBytes())
	if err != nil {
		return 0, fmt.Errorf("delete namespace %q: %w", ns, err)
	}
	return n, nil
}

// DeleteNamespace erases every episode of ns and its index entries, batch
// by batch (DeleteNamespaceBatch) until none is left or ctx ends; it
// returns how many episodes it deleted, also with an error: those stay
// deleted (the batch in flight at the error may have committed too, so
// then the count is a lower bound by at most one batch).
func (s *Store) DeleteNamespace(ctx context.Context, ns string) (int64, error) {
	var total int64
	for {
		n, err := s.DeleteNamespaceBatch(ctx, ns)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

func (s *Store) eraseEpisodes() int {
	if s.eraseBatch.episodes > 0 {
		return s.eraseBatch.episodes
	}
	return EraseBatchEpisodes
}

func (s *Store) eraseBytes() int {
	if s.eraseBatch.bytes > 0 {
		return s.eraseBatch.bytes
	}
	return EraseBatchBytes
}

// deleteWhere runs one deleting statement in a transaction that announces
// it on PurgeChannel (see there).
func (s *Store) deleteWhere(ctx context.Context, purge Purge, sql string, args ...any) (int64, error) {
	batch := &pgx.Batch{}
	timed := queueStatementTimeout(ctx, batch)
	batch.Queue(lockNamespaceSQL, purge.Namespace)
	batch.Queue(sql, args...)
	batch.Queue(notifyPurgeSQL, purge.payload())
	br := s.pool.SendBatch(ctx, batch)
	var n int64
	err := func() error {
		if timed {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("set statement timeout: %w", err)
			}
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("lock namespace: %w", err)
		}
		tag, err := br.Exec()
		n = tag.RowsAffected()
		if err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("announce the delete: %w", err)
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// RecordAccess bumps the access count of the given episodes of ns and moves
// their last access to at (never backwards), in one UPDATE. Unknown and
// malformed ids are ignored; it returns how many episodes were updated.
func (s *Store) RecordAccess(ctx context.Context, ns string, ids []string, at time.Time) (int, error) {
	valid := make([]string, 0, len(ids))
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil && !seen[u] {
			seen[u] = true
			valid = append(valid, u.String())
		}
	}
	if len(valid) == 0 {
		return 0, nil
	}
	if at.IsZero() {
		at = time.Now()
	}
	tag, err := s.pool.Exec(ctx, `UPDATE episodes
SET access_count = access_count + 1, last_accessed_at = greatest(last_accessed_at, $3)
WHERE namespace = $1 AND id = ANY($2::uuid[])`, ns, valid, at)
	if err != nil {
		return 0, fmt.Errorf("record access of %d episodes in %q: %w", len(valid), ns, err)
	}
	return int(tag.RowsAffected()), nil
}

// Stats are the store's counts.
type Stats struct {
	// EpisodeCount counts the namespace's episodes when one was asked for,
	// else all episodes.
	EpisodeCount int64
	// NamespaceCount counts non-empty namespaces; 0 when one was asked for.
	NamespaceCount int64
	// SchemaVersion is the applied schema version.
	SchemaVersion int64
}

// Stats reads the counts the triggers keep, so it costs the same at any size.
func (s *Store) Stats(ctx context.Context, ns string) (Stats, error) {
	var st Stats
	v, err := readVersion(ctx, s.pool)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.SchemaVersion = v
	if ns != "" {
		err = s.pool.QueryRow(ctx, `SELECT coalesce(max(episode_count), 0) FROM namespace_stats WHERE namespace = $1`, ns).
			Scan(&st.EpisodeCount)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT coalesce(sum(episode_count), 0)::bigint, count(*) FILTER (WHERE episode_count > 0)
FROM namespace_stats`).Scan(&st.EpisodeCount, &st.NamespaceCount)
	}
	if err != nil {
		return st, fmt.Errorf("stats %q: %w", ns, err)
	}
	return st, nil
}
