package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brainhq/brain/services/memory/episode"
)

// ErrVersionConflict: PutWorkingMemory's expected version is not the
// buffer's current one; another writer got there first.
var ErrVersionConflict = errors.New("working memory version conflict")

const getWorkingMemorySQL = `SELECT w.version, w.updated_at, i.episode_id::text, i.content, i.origin, i.attention,
	i.turns_since_attended, i.rehearsals, i.added_at, i.last_attended_at
FROM working_memory w LEFT JOIN working_memory_items i USING (namespace, session_id)
WHERE w.namespace = $1 AND w.session_id = $2
ORDER BY i.position`

// GetWorkingMemory returns a session's buffer, in one query. A session
// without one has version 0 and no items.
func (s *Store) GetWorkingMemory(ctx context.Context, ns, session string) (episode.WorkingMemory, error) {
	wm := episode.WorkingMemory{Namespace: ns, SessionID: session}
	rows, err := s.pool.Query(ctx, getWorkingMemorySQL, ns, session)
	if err != nil {
		return wm, fmt.Errorf("get working memory %q/%q: %w", ns, session, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, content         *string
			origin              *int16
			attention           *float64
			turns, rehearsals   *int32
			added, lastAttended *time.Time
		)
		if err := rows.Scan(&wm.Version, &wm.UpdatedAt, &id, &content, &origin, &attention, &turns, &rehearsals,
			&added, &lastAttended); err != nil {
			return wm, fmt.Errorf("get working memory %q/%q: %w", ns, session, err)
		}
		wm.UpdatedAt = wm.UpdatedAt.UTC()
		if id == nil { // a buffer without items (LEFT JOIN)
			continue
		}
		wm.Items = append(wm.Items, episode.WorkingMemoryItem{
			EpisodeID: *id, Content: *content, Origin: episode.Origin(*origin), Attention: *attention,
			TurnsSinceAttended: int(*turns), Rehearsals: int(*rehearsals),
			AddedAt: added.UTC(), LastAttendedAt: lastAttended.UTC(),
		})
	}
	if err := rows.Err(); err != nil {
		return wm, fmt.Errorf("get working memory %q/%q: %w", ns, session, err)
	}
	return wm, nil
}

// putWorkingMemorySQL is PutWorkingMemory in one statement (one round
// trip, its own transaction). cas advances the version only if it is still
// the expected one ($3; 0 creates the buffer); the item changes run only
// when it did, and touch disjoint rows (del removes the items not in the new
// set, ins upserts the new set), so the sub-statements, which share one
// snapshot, never meet. A concurrent writer of the same session waits on
// cas's row (or key) and then finds the version moved: no row,
// ErrVersionConflict, nothing changed. Other writers of items (the cascade
// of an episode delete) remove only rows of deleted episodes, which ins
// would then fail to reference (foreign key): ErrInvalid.
const putWorkingMemorySQL = `WITH cas AS (
	UPDATE working_memory SET version = version + 1, updated_at = now()
	WHERE namespace = $1 AND session_id = $2 AND version = $3 AND $3 > 0
	RETURNING version, updated_at
), created AS (
	INSERT INTO working_memory (namespace, session_id, version, updated_at)
	SELECT $1, $2, 1, now() WHERE $3 = 0
	ON CONFLICT DO NOTHING
	RETURNING version, updated_at
), won AS (
	SELECT * FROM cas UNION ALL SELECT * FROM created
), del AS (
	DELETE FROM working_memory_items i
	WHERE i.namespace = $1 AND i.session_id = $2 AND EXISTS (SELECT 1 FROM won) AND i.episode_id <> ALL ($5::uuid[])
), ins AS (
	INSERT INTO working_memory_items AS i (namespace, session_id, position, episode_id, content,
		origin, attention, turns_since_attended, rehearsals, added_at, last_attended_at)
	SELECT $1, $2, r.pos, r.id, r.content, r.origin, r.attention, r.turns, r.rehearsals, r.added, r.attended
	FROM unnest($4::int[], $5::uuid[], $6::text[], $7::int2[], $8::float8[], $9::int[], $10::int[],
		$11::timestamptz[], $12::timestamptz[]) AS r(pos, id, content, origin, attention, turns, rehearsals, added, attended)
	WHERE EXISTS (SELECT 1 FROM won)
	ON CONFLICT (namespace, session_id, episode_id) DO UPDATE SET
		position = excluded.position, content = excluded.content, origin = excluded.origin,
		attention = excluded.attention, turns_since_attended = excluded.turns_since_attended,
		rehearsals = excluded.rehearsals, added_at = excluded.added_at, last_attended_at = excluded.last_attended_at
)
SELECT version, updated_at FROM won`

const deleteWorkingMemoryItemsSQL = `DELETE FROM working_memory_items WHERE namespace = $1 AND session_id = $2`

// PutWorkingMemory replaces a session's buffer if its version is still
// expected (0: the session has none), atomically, and returns it at the
// new version. ErrVersionConflict when it is not; ErrInvalid when an item
// is not an episode of ns (or not storable).
func (s *Store) PutWorkingMemory(ctx context.Context, ns, session string, expected int64, items []episode.WorkingMemoryItem) (episode.WorkingMemory, error) {
	wm := episode.WorkingMemory{Namespace: ns, SessionID: session}
	n := len(items)
	var (
		pos, turns, rehearsals = make([]int32, n), make([]int32, n), make([]int32, n)
		ids, contents          = make([]string, n), make([]string, n)
		origins                = make([]int16, n)
		attention              = make([]float64, n)
		added, attended        = make([]time.Time, n), make([]time.Time, n)
	)
	for i, it := range items {
		u, err := uuid.Parse(it.EpisodeID)
		if err != nil {
			return wm, fmt.Errorf("put working memory: %w: item %d: episode id %q is not a UUID", ErrInvalid, i, it.EpisodeID)
		}
		if err := validText("content", it.Content, episode.MaxWorkingMemoryContentBytes); err != nil {
			return wm, fmt.Errorf("put working memory: item %d: %w", i, err)
		}
		pos[i], ids[i], contents[i], origins[i] = int32(i), u.String(), it.Content, int16(it.Origin)
		attention[i], turns[i], rehearsals[i] = it.Attention, int32(it.TurnsSinceAttended), int32(it.Rehearsals)
		added[i], attended[i] = it.AddedAt, it.LastAttendedAt
	}
	err := s.pool.QueryRow(ctx, putWorkingMemorySQL, ns, session, expected, pos, ids, contents, origins, attention,
		turns, rehearsals, added, attended).Scan(&wm.Version, &wm.UpdatedAt)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return wm, fmt.Errorf("put working memory %q/%q: %w: expected version %d is stale", ns, session, ErrVersionConflict, expected)
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation
		return wm, fmt.Errorf("put working memory %q/%q: %w: an item's episode_id is not an episode of namespace %q",
			ns, session, ErrInvalid, ns)
	case err != nil:
		return wm, fmt.Errorf("put working memory %q/%q: %w", ns, session, err)
	}
	wm.UpdatedAt = wm.UpdatedAt.UTC()
	wm.Items = append([]episode.WorkingMemoryItem(nil), items...)
	for i := range wm.Items {
		wm.Items[i].EpisodeID = ids[i]
	}
	return wm, nil
}

// ClearWorkingMemory empties a session's buffer and advances its version
// (so a writer that read before the clear cannot put its old items back);
// it reports whether there was a buffer, and the version after. The
// UPDATE runs first and locks the row, so the DELETE (a statement of its
// own, with a fresh snapshot) also sees the items of a Put it waited for.
func (s *Store) ClearWorkingMemory(ctx context.Context, ns, session string) (bool, int64, error) {
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE working_memory SET version = version + 1, updated_at = now()
WHERE namespace = $1 AND session_id = $2 RETURNING version`, ns, session)
	batch.Queue(deleteWorkingMemoryItemsSQL, ns, session)
	br := s.pool.SendBatch(ctx, batch)
	var version int64
	err := br.QueryRow().Scan(&version)
	found := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, 0, fmt.Errorf("clear working memory %q/%q: %w", ns, session, err)
	}
	return found, version, nil
}

// DeleteWorkingMemories erases every buffer of ns (the namespace erase's
// last step; the items of erased episodes are already gone with them).
func (s *Store) DeleteWorkingMemories(ctx context.Context, ns string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM working_memory WHERE namespace = $1`, ns)
	if err != nil {
		return 0, fmt.Errorf("delete working memories of %q: %w", ns, err)
	}
	return tag.RowsAffected(), nil
}
