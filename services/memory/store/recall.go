package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/brainhq/brain/services/memory/recall"
)

// Ranked recall scores episodes with BM25 (relevance), blended with
// importance and recency, in one statement (see the package doc for why):
//
//   - The query's content words are stemmed; every word form of the
//     namespace with one of those stems is a query term, weighted by its
//     own IDF.
//   - Without a session filter: for each term, the TermDepth postings with
//     the highest BM25 term weight that pass the time and importance
//     filters, read from one index (postings_rank, which also carries
//     importance and created_at); an episode's relevance is the
//     IDF-weighted sum of the weights read. Only the final limit rows touch
//     the episodes table, and the work is bounded whatever the query.
//   - With a session filter: the SessionCandidates most recent episodes of
//     the session that pass the other filters and match the OR tsquery,
//     each scored exactly from its own postings.
//
// Relevance is then divided by the best candidate's, so the best scores 1.
const (
	// TermDepth is how many postings of each query term unfiltered recall
	// reads.
	TermDepth = 200
	// SessionCandidates caps the candidates of a session-filtered ranked
	// recall.
	SessionCandidates = 2000
	// ContextSeeds is how many of the best own-word matches lend their
	// words to their session neighbours.
	ContextSeeds = 10
	// WindowCandidates caps the episodes a time expression adds as
	// candidates (the latest within its reach), beside the word matches.
	WindowCandidates = 200
	// SpeakerRerank is how many of the best candidates are checked for a
	// speaker the query names.
	SpeakerRerank = 200
)

// Statement is one SQL statement with its bind arguments.
type Statement struct {
	SQL  string
	Args []any
}

// resultColumns follow episodeColumns in every recall statement.
const resultColumns = `, top.relevance, top.importance, top.recency, top.total, top.own_words, top.context, top.time_score,
	top.speaker_score, top.speaker_named`

// args accumulates bind arguments and returns their $n references.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// filterSQL appends the query's filters on the rows of alias (episodes or
// postings, which share the column names); each value is a bind argument,
// never SQL text. The session, speaker and metadata filters only apply to
// episodes (postings carry none of them; callers route such queries through
// episodes).
func filterSQL(q recall.Query, a *args, alias string) string {
	var b strings.Builder
	if q.SessionID != "" {
		b.WriteString(" AND " + alias + ".session_id = " + a.add(q.SessionID))
	}
	if q.Speaker != "" && alias != "p" {
		b.WriteString(" AND " + alias + ".speaker = " + a.add(q.Speaker))
	}
	if len(q.Metadata) > 0 && alias != "p" {
		b.WriteString(" AND " + alias + ".metadata @> " + a.add(metadataJSON(q.Metadata)) + "::jsonb")
	}
	if q.CreatedAfter != nil {
		b.WriteString(" AND " + alias + ".created_at >= " + a.add(*q.CreatedAfter))
	}
	if q.CreatedBefore != nil {
		b.WriteString(" AND " + alias + ".created_at < " + a.add(*q.CreatedBefore))
	}
	if q.MinImportance != nil {
		b.WriteString(" AND " + alias + ".importance >= " + a.add(*q.MinImportance))
	}
	return b.String()
}

// prepare normalises q and fixes its "now".
func prepare(q recall.Query) recall.Query {
	q = q.Normalized()
	if q.AsOf.IsZero() {
		q.AsOf = time.Now()
	}
	return q
}

// RecallStatement returns the one statement Recall runs for q (after
// filling q's defaults, AsOf = now when zero), or ok=false when q has
// neither content terms nor a time expression and Recall answers empty
// without asking the database. It is exported so that a benchmark can run
// the very same SQL directly.
func RecallStatement(q recall.Query) (st Statement, ok bool) {
	q = prepare(q)
	if q.Mode == recall.Substring {
		return substringStatement(q), true
	}
	an := recall.Analyze(q.Text, q.AsOf)
	if len(an.Terms) == 0 && len(an.Windows) == 0 {
		return Statement{}, false
	}
	return rankedStatement(q, an), true
}

func rankedStatement(q recall.Query, an recall.Analysis) Statement {
	var a args
	ns := a.add(q.Namespace)
	termsArg := a.add(an.Terms)
	asOf := a.add(q.AsOf)
	halfLife := a.add(q.HalfLife.Seconds())
	w := q.Weights.WithTime(len(an.Windows) > 0)
	wRel, wImp, wRec, wTime := a.add(w.Relevance), a.add(w.Importance), a.add(w.Recency), a.add(w.Time)
	wSpk := a.add(recall.DefaultSpeakerWeight)
	limit := a.add(q.Limit)

	var hits string
	switch {
	case len(an.Terms) == 0:
		hits = `SELECT NULL::uuid AS episode_id, 0::float8 AS rel, 0::float8 AS importance, NULL::timestamptz AS created_at WHERE false`
	case q.SessionID != "" || q.Speaker != "" || len(q.Metadata) > 0:
		// Postings know no session, speaker or metadata: the filtered episodes
		// that match any term, newest first, each scored from its postings.
		tsq := a.add(recall.TSQuery(an.Terms))
		filters := filterSQL(q, &a, "e")
		hits = `SELECT c.id AS episode_id, r.rel, c.importance, c.created_at
	FROM (SELECT e.id, e.importance, e.created_at FROM episodes e
		WHERE e.namespace = ` + ns + ` AND e.tsv @@ to_tsquery('english', ` + tsq + `)` + filters + `
		ORDER BY e.created_at DESC LIMIT ` + a.add(SessionCandidates) + `) c
	CROSS JOIN LATERAL (SELECT sum(t.idf * p.impact) AS rel
		FROM postings p JOIN terms t ON t.lexeme = p.lexeme
		WHERE p.namespace = ` + ns + ` AND p.episode_id = c.id) r
	WHERE r.rel > 0`
	default:
		// Time and importance filters apply to the postings themselves
		// (they carry both), so the best TermDepth are the best that pass.
		filters := filterSQL(q, &a, "p")
		hits = `SELECT h.episode_id, sum(t.idf * h.impact) AS rel, max(h.importance) AS importance, max(h.created_at) AS created_at
	FROM terms t CROSS JOIN LATERAL (
		SELECT p.episode_id, p.impact, p.importance, p.created_at FROM postings p
		WHERE p.namespace = ` + ns + ` AND p.lexeme = t.lexeme` + filters + `
		ORDER BY p.impact DESC LIMIT ` + a.add(TermDepth) + `) h
	GROUP BY h.episode_id`
	}

	// Conversational context: the best-matching episodes lend their words,
	// at a lower weight, to the episodes just after and just before them in
	// their session (an answer rarely repeats its question's words).
	seeds := a.add(ContextSeeds)
	ctxPrev, ctxNext := a.add(recall.ContextFromPrevious), a.add(recall.ContextFromNext)
	ctxStatement := a.add(recall.ContextAfterStatement)
	nbFilters := filterSQL(recall.Query{Speaker: q.Speaker, Metadata: q.Metadata, CreatedAfter: q.CreatedAfter,
		CreatedBefore: q.CreatedBefore, MinImportance: q.MinImportance}, &a, "n")
	neighbour := func(cmp, order string) string {
		return `SELECT e.id, e.importance, e.created_at, e.speaker, e.metadata FROM episodes e
		WHERE e.namespace = ` + ns + ` AND e.session_id = s.session_id AND (e.created_at, e.id) ` + cmp + ` (s.created_at, s.episode_id)
		ORDER BY e.created_at ` + order + `, e.id ` + order + ` LIMIT 1`
	}

	windowed, timeScore := "", "0::float8"
	if len(an.Windows) > 0 {
		var starts, ends []time.Time
		var before, after []float64
		from, to := an.Windows[0].Reach()
		for _, w := range an.Windows {
			starts, ends = append(starts, w.Start), append(ends, w.End)
			before, after = append(before, w.Before.Seconds()), append(after, w.After.Seconds())
			f, t := w.Reach()
			from, to = minTime(from, f), maxTime(to, t)
		}
		filters := filterSQL(q, &a, "e")
		windowed = `
		UNION ALL
		SELECT w.episode_id, 0, 0, 0, w.importance, w.created_at FROM (
			SELECT e.id AS episode_id, e.importance, e.created_at FROM episodes e
			WHERE e.namespace = ` + ns + ` AND e.created_at >= ` + a.add(from) + ` AND e.created_at < ` + a.add(to) + filters + `
			ORDER BY e.created_at DESC LIMIT ` + a.add(WindowCandidates) + `) w`
		timeScore = `(SELECT max(CASE WHEN c.created_at < w.s THEN exp(-extract(epoch FROM w.s - c.created_at)::float8 / w.b)
			WHEN c.created_at >= w.e THEN exp(-extract(epoch FROM c.created_at - w.e)::float8 / w.a) ELSE 1 END)
			FROM unnest(` + a.add(starts) + `::timestamptz[], ` + a.add(ends) + `::timestamptz[], ` +
			a.add(before) + `::float8[], ` + a.add(after) + `::float8[]) AS w(s, e, b, a))`
	}

	sql := `WITH named AS MATERIALIZED (
	-- Speakers of the namespace the query names, by full name or first name.
	SELECT sp.speaker, w.word FROM namespace_speakers sp
	JOIN unnest(` + termsArg + `::text[]) AS w(word)
	  ON sp.folded = w.word OR split_part(sp.folded, ' ', 1) = w.word
	WHERE sp.namespace = ` + ns + ` AND sp.episodes > 0
), terms AS MATERIALIZED (
	-- One IDF per stem (the document frequencies of its forms summed; an
	-- episode holding two forms counts twice, a small overcount), applied
	-- to each form of the namespace with a stem of the query's words. A
	-- named speaker's name still counts where content mentions it, at a
	-- fraction of its weight: it names who, not what.
	SELECT t.lexeme, ln(1 + (s.episode_count - least(t.sdf, s.episode_count) + 0.5) / (least(t.sdf, s.episode_count) + 0.5))
		* CASE WHEN t.lexeme IN (SELECT word FROM named) THEN ` + a.add(recall.NamedSpeakerTermWeight) + `::float8 ELSE 1 END AS idf
	FROM namespace_stats s CROSS JOIN (
		SELECT lexeme, sum(df) OVER (PARTITION BY stem) AS sdf FROM term_stats
		WHERE namespace = ` + ns + ` AND df > 0
		  AND stem = ANY (ARRAY(SELECT (ts_lexize('english_stem', u.lexeme))[1]
			FROM unnest(to_tsvector('simple', array_to_string(` + termsArg + `::text[], ' '))) u))) t
	WHERE s.namespace = ` + ns + `
), hits AS (
	` + hits + `
), seeds AS MATERIALIZED (
	SELECT h.episode_id, h.rel, e.session_id, e.created_at, strpos(e.content, '?') > 0 AS question
	FROM (SELECT episode_id, rel, created_at FROM hits ORDER BY rel DESC, created_at DESC, episode_id LIMIT ` + seeds + `) h
	JOIN episodes e ON e.namespace = ` + ns + ` AND e.id = h.episode_id
	WHERE e.session_id <> ''
), neighbours AS (
	SELECT n.id AS episode_id, CASE WHEN s.question THEN s.rel ELSE ` + ctxStatement + `::float8 * s.rel END AS prev_rel,
		0::float8 AS next_rel, n.importance, n.created_at, n.speaker, n.metadata
	FROM seeds s CROSS JOIN LATERAL (` + neighbour(">", "ASC") + `) n
	UNION ALL
	SELECT n.id, 0, s.rel, n.importance, n.created_at, n.speaker, n.metadata
	FROM seeds s CROSS JOIN LATERAL (` + neighbour("<", "DESC") + `) n
), cands AS (
	SELECT episode_id, sum(own) AS own, sum(prev_rel) AS prev_rel, sum(next_rel) AS next_rel,
		max(importance) AS importance, max(created_at) AS created_at
	FROM (
		SELECT episode_id, rel AS own, 0::float8 AS prev_rel, 0::float8 AS next_rel, importance, created_at FROM hits
		UNION ALL
		SELECT n.episode_id, 0, n.prev_rel, n.next_rel, n.importance, n.created_at FROM neighbours n WHERE true` + nbFilters + windowed + `
	) c GROUP BY episode_id
), parts AS (
	SELECT c.episode_id, c.created_at, c.importance, c.own,
		` + ctxPrev + `::float8 * c.prev_rel + ` + ctxNext + `::float8 * c.next_rel AS ctx,
		exp(-ln(2) * greatest(extract(epoch FROM ` + asOf + `::timestamptz - c.created_at)::float8, 0) / ` + halfLife + `::float8) AS recency,
		coalesce(` + timeScore + `, 0) AS time_score
	FROM cands c
), norm AS (
	SELECT parts.*, coalesce(own / nullif(max(own + ctx) OVER (), 0), 0) AS own_words,
		coalesce(ctx / nullif(max(own + ctx) OVER (), 0), 0) AS context
	FROM parts
), pre AS (
	-- A neighbour that shares no word and no named time is kept only on a
	-- real share of context (a reply to a question), not on a trace of it.
	SELECT norm.*, ` + wRel + `::float8 * (own_words + context) + ` + wImp + `::float8 * importance + ` + wRec + `::float8 * recency + ` + wTime + `::float8 * time_score AS base
	FROM norm
	WHERE own > 0 OR context >= ` + a.add(recall.MinContextShare) + ` OR time_score > 0
	ORDER BY base DESC, created_at DESC, episode_id LIMIT ` + a.add(SpeakerRerank) + `
), top AS (
	-- The speaker part: looked up for the best candidates only, and only
	-- when the query names a speaker.
	SELECT pre.*, own_words + context AS relevance, sp.speaker AS speaker_score, named.present AS speaker_named,
		(base + ` + wSpk + `::float8 * sp.speaker) / (1 + CASE WHEN named.present THEN ` + wSpk + `::float8 ELSE 0 END) AS total
	FROM pre
	CROSS JOIN (SELECT EXISTS (SELECT 1 FROM named) AS present) named
	CROSS JOIN LATERAL (SELECT CASE WHEN named.present AND (SELECT e.speaker FROM episodes e
		WHERE e.namespace = ` + ns + ` AND e.id = pre.episode_id) IN (SELECT speaker FROM named) THEN 1 ELSE 0 END::float8 AS speaker) sp
	ORDER BY total DESC, created_at DESC, episode_id LIMIT ` + limit + `
)
SELECT ` + episodeColumns + resultColumns + `
FROM top JOIN episodes e ON e.namespace = ` + ns + ` AND e.id = top.episode_id
ORDER BY top.total DESC, top.created_at DESC, top.episode_id`
	return Statement{SQL: sql, Args: a}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// substringStatement is the prototype's recall, escaped: whole query
// contained in content (ILIKE), importance then recency; relevance is 1 for
// every match.
func substringStatement(q recall.Query) Statement {
	var a args
	ns := a.add(q.Namespace)
	pattern := a.add(recall.ContainsPattern(q.Text))
	asOf := a.add(q.AsOf)
	halfLife := a.add(q.HalfLife.Seconds())
	wRel, wImp, wRec := a.add(q.Weights.Relevance), a.add(q.Weights.Importance), a.add(q.Weights.Recency)
	filters := filterSQL(q, &a, "e")
	sql := `WITH parts AS (
	SELECT e.id AS episode_id, e.created_at, 1::float8 AS relevance, e.importance,
		exp(-ln(2) * greatest(extract(epoch FROM ` + asOf + `::timestamptz - e.created_at)::float8, 0) / ` + halfLife + `::float8) AS recency
	FROM episodes e
	WHERE e.namespace = ` + ns + ` AND e.content ILIKE ` + pattern + ` ESCAPE '\'` + filters + `
	ORDER BY e.importance DESC, e.created_at DESC, e.id LIMIT ` + a.add(q.Limit) + `
), top AS (
	SELECT parts.*, ` + wRel + `::float8 * relevance + ` + wImp + `::float8 * importance + ` + wRec + `::float8 * recency AS total,
		relevance AS own_words, 0::float8 AS context, 0::float8 AS time_score, 0::float8 AS speaker_score, false AS speaker_named
	FROM parts
)
SELECT ` + episodeColumns + resultColumns + `
FROM top JOIN episodes e ON e.namespace = ` + ns + ` AND e.id = top.episode_id
ORDER BY e.importance DESC, e.created_at DESC, e.id`
	return Statement{SQL: sql, Args: a}
}

// Recall answers q from one namespace in one round trip: Ranked (BM25 over
// the query's content words, OR semantics, blended with importance and
// recency) or Substring (see recall.Substring). A ranked query without
// content words (only stop words or punctuation) matches nothing.
func (s *Store) Recall(ctx context.Context, q recall.Query) ([]recall.Result, error) {
	st, ok := RecallStatement(q)
	if !ok {
		return nil, nil
	}
	if q.Mode == recall.Substring && strings.IndexByte(q.Text, 0) >= 0 {
		return nil, nil // content can never hold NUL, and PostgreSQL rejects it
	}
	rows, err := s.pool.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return nil, fmt.Errorf("recall %q: %w", q.Namespace, err)
	}
	defer rows.Close()
	var out []recall.Result
	for rows.Next() {
		var r recall.Result
		sc := &r.Scores
		ep, err := scanEpisode(rows, &sc.Relevance, &sc.Importance, &sc.Recency, &sc.Total, &sc.OwnWords, &sc.Context, &sc.Time,
			&sc.Speaker, &sc.SpeakerNamed)
		if err != nil {
			return nil, fmt.Errorf("recall %q: %w", q.Namespace, err)
		}
		r.Episode = ep
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recall %q: %w", q.Namespace, err)
	}
	return out, nil
}

// metadataJSON is a metadata filter as the jsonb it must be contained in.
func metadataJSON(m map[string]string) string {
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}
