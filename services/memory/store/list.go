package store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/brainhq/brain/services/memory/episode"
)

// ListQuery pages through one namespace in time order.
type ListQuery struct {
	Namespace string
	// SessionID, when set, lists one session only.
	SessionID string
	// Speaker, when set, lists one speaker's episodes only.
	Speaker string
	// Metadata, when set, lists only episodes whose metadata holds every
	// one of these pairs.
	Metadata map[string]string
	// CreatedAfter and CreatedBefore bound CreatedAt, both exclusive.
	CreatedAfter, CreatedBefore *time.Time
	// PageSize is 1..episode.MaxPageSize; 0 means episode.DefaultPageSize.
	PageSize int
	// PageToken continues a previous List with the same filters.
	PageToken string
	// Descending lists newest first.
	Descending bool
}

// A page token is the last row's (created_at µs, id) plus a fingerprint of
// the filters, so a token used with other filters is refused rather than
// silently skipping rows. base64url of 8+16+8 bytes.
const tokenLen = 8 + 16 + 8

func (q ListQuery) fingerprint() uint64 {
	h := fnv.New64a()
	write := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(q.Namespace)
	write(q.SessionID)
	for _, t := range []*time.Time{q.CreatedAfter, q.CreatedBefore} {
		if t == nil {
			write("-")
		} else {
			write(t.UTC().Format(time.RFC3339Nano))
		}
	}
	if q.Descending {
		write("desc")
	}
	if q.Speaker != "" { // only when set: tokens issued before the filter existed stay valid
		write("speaker")
		write(q.Speaker)
	}
	for _, k := range slices.Sorted(maps.Keys(q.Metadata)) {
		write("meta")
		write(k)
		write(q.Metadata[k])
	}
	return h.Sum64()
}

func encodeToken(q ListQuery, at time.Time, id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("page token for id %q: %w", id, err)
	}
	var b [tokenLen]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(at.UnixMicro()))
	copy(b[8:24], u[:])
	binary.BigEndian.PutUint64(b[24:32], q.fingerprint())
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func decodeToken(q ListQuery) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(q.PageToken)
	if err != nil || len(b) != tokenLen {
		return time.Time{}, "", ErrBadPageToken
	}
	if binary.BigEndian.Uint64(b[24:32]) != q.fingerprint() {
		return time.Time{}, "", fmt.Errorf("%w: issued for other filters", ErrBadPageToken)
	}
	u, err := uuid.FromBytes(b[8:24])
	if err != nil {
		return time.Time{}, "", ErrBadPageToken
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b[0:8]))).UTC(), u.String(), nil
}

// List returns one page of a namespace's episodes ordered by (created_at,
// id), ascending or descending, using keyset pagination (each page is an
// index range scan, however deep). nextToken is empty on the last page.
func (s *Store) List(ctx context.Context, q ListQuery) (eps []episode.Episode, nextToken string, err error) {
	size := q.PageSize
	switch {
	case size <= 0:
		size = episode.DefaultPageSize
	case size > episode.MaxPageSize:
		size = episode.MaxPageSize
	}
	var a args
	where := "e.namespace = " + a.add(q.Namespace)
	if q.SessionID != "" {
		where += " AND e.session_id = " + a.add(q.SessionID)
	}
	if q.Speaker != "" {
		where += " AND e.speaker = " + a.add(q.Speaker)
	}
	if len(q.Metadata) > 0 {
		where += " AND e.metadata @> " + a.add(metadataJSON(q.Metadata)) + "::jsonb"
	}
	if q.CreatedAfter != nil {
		where += " AND e.created_at > " + a.add(*q.CreatedAfter)
	}
	if q.CreatedBefore != nil {
		where += " AND e.created_at < " + a.add(*q.CreatedBefore)
	}
	cmp, dir := ">", "ASC"
	if q.Descending {
		cmp, dir = "<", "DESC"
	}
	if q.PageToken != "" {
		at, id, err := decodeToken(q)
		if err != nil {
			return nil, "", fmt.Errorf("list %q: %w", q.Namespace, err)
		}
		where += " AND (e.created_at, e.id) " + cmp + " (" + a.add(at) + ", " + a.add(id) + "::uuid)"
	}
	sql := `SELECT ` + episodeColumns + ` FROM episodes e WHERE ` + where +
		` ORDER BY e.created_at ` + dir + `, e.id ` + dir + ` LIMIT ` + a.add(size+1)
	rows, err := s.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, "", fmt.Errorf("list %q: %w", q.Namespace, err)
	}
	defer rows.Close()
	for rows.Next() {
		ep, err := scanEpisode(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list %q: %w", q.Namespace, err)
		}
		eps = append(eps, ep)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list %q: %w", q.Namespace, err)
	}
	if len(eps) > size {
		eps = eps[:size]
		last := eps[size-1]
		if nextToken, err = encodeToken(q, last.CreatedAt, last.ID); err != nil {
			return nil, "", fmt.Errorf("list %q: %w", q.Namespace, err)
		}
	}
	return eps, nextToken, nil
}
