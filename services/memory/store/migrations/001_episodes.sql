-- Episodes, and the inverted index that ranked recall reads.
--
-- episodes holds what clients wrote; tsv is its generated full-text vector
-- (the 'english' config: stems, no stop words), which filtered recall
-- matches with an OR tsquery. The triggers below keep three derived tables
-- exact, in the writing transaction (statement-level with transition tables
-- for inserts and deletes, per row for the rare content update):
--   namespace_stats  episode count and total indexed words per namespace
--                    (N and avgdl for BM25, and cheap GetStats counts);
--   term_stats       per namespace, each word form's English stem and
--                    document frequency (IDF);
--   postings         one row per (episode, word form) with its BM25 term
--                    weight ("impact"), indexed by (namespace, lexeme,
--                    impact DESC) so recall reads only the best few
--                    postings of each form.
-- Every key starts with the namespace: nothing is shared across namespaces.
-- Text keys use the "C" collation: byte comparison, no locale cost.

CREATE TABLE episodes (
    namespace        text COLLATE "C" NOT NULL
                     CHECK (octet_length(namespace) BETWEEN 1 AND 128),
    id               uuid NOT NULL,
    session_id       text COLLATE "C" NOT NULL DEFAULT ''
                     CHECK (octet_length(session_id) <= 128),
    content          text NOT NULL CHECK (octet_length(content) <= 16384),
    importance       double precision NOT NULL DEFAULT 0.5
                     CHECK (importance >= 0 AND importance <= 1),
    created_at       timestamptz NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}',
    affect_valence   double precision,
    affect_arousal   double precision,
    affect_intensity double precision,
    access_count     bigint NOT NULL DEFAULT 0,
    last_accessed_at timestamptz,
    tsv              tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,
    PRIMARY KEY (namespace, id),
    CHECK ((affect_valence IS NULL) = (affect_arousal IS NULL)
       AND (affect_valence IS NULL) = (affect_intensity IS NULL))
);

-- ListEpisodes (keyset on created_at, id), recency and time filters.
CREATE INDEX episodes_ns_created ON episodes (namespace, created_at, id);
-- Session-filtered listing and recall.
CREATE INDEX episodes_ns_session_created ON episodes (namespace, session_id, created_at, id);
-- SUBSTRING recall: walk a namespace in its output order, stop at the limit.
CREATE INDEX episodes_ns_importance ON episodes (namespace, importance DESC, created_at DESC, id);

CREATE TABLE namespace_stats (
    namespace     text COLLATE "C" PRIMARY KEY,
    episode_count bigint NOT NULL DEFAULT 0,
    total_len     bigint NOT NULL DEFAULT 0
);

-- lexeme is a word's surface form (lower case); stem is its English stem.
-- Recall expands each query word to every form of its stem in the
-- namespace, each weighted by its own IDF (see store's package doc).
CREATE TABLE term_stats (
    namespace text COLLATE "C" NOT NULL,
    lexeme    text COLLATE "C" NOT NULL,
    stem      text COLLATE "C" NOT NULL,
    df        integer NOT NULL,
    PRIMARY KEY (namespace, lexeme)
);
CREATE INDEX term_stats_stem ON term_stats (namespace, stem) INCLUDE (lexeme, df);

-- importance and created_at are copied from the episode so that ranking
-- reads nothing but this index until it has its top rows.
CREATE TABLE postings (
    namespace  text COLLATE "C" NOT NULL,
    episode_id uuid NOT NULL,
    lexeme     text COLLATE "C" NOT NULL,
    impact     real NOT NULL,
    importance double precision NOT NULL,
    created_at timestamptz NOT NULL,
    -- Filtered recall scores its candidates, and deletes find postings, by episode.
    PRIMARY KEY (namespace, episode_id, lexeme)
);
-- Unfiltered recall: the highest-impact postings of a term, index only.
CREATE INDEX postings_rank ON postings (namespace, lexeme, impact DESC)
    INCLUDE (episode_id, importance, created_at);

-- memory_index_toks lists the indexed words of episodes: lexeme is a
-- surface form from the 'simple' config (lower case, same parser as
-- 'english'), stem its 'english' stem; stop words (no stem) are left out.
-- tf counts a form's occurrences, dl the episode's indexed words.
CREATE FUNCTION memory_index_toks(nss text[], ids uuid[], contents text[])
RETURNS TABLE (namespace text, episode_id uuid, lexeme text, stem text, tf integer, dl integer)
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT r.ns, r.id, w.lexeme, w.stem, w.tf, (sum(w.tf) OVER (PARTITION BY r.ns, r.id))::integer
    FROM unnest(nss, ids, contents) AS r(ns, id, content),
    LATERAL (SELECT u.lexeme, (ts_lexize('english_stem', u.lexeme))[1] AS stem,
                    coalesce(cardinality(u.positions), 1) AS tf
               FROM unnest(to_tsvector('simple', r.content)) u) w
    WHERE w.stem IS NOT NULL
$fn$;

-- memory_index_add adds episodes to the derived tables. BM25 term weight with
-- k1 = 1.2, b = 0.75: impact = tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl)),
-- tf the lexeme's occurrences, dl the episode's indexed tokens, avgdl the
-- namespace's mean dl including this batch (a weight is not revised when
-- later writes move avgdl; the drift is small once a namespace has a few
-- dozen episodes). Locks namespace_stats rows before term_stats rows, each
-- in key order, so concurrent writers cannot deadlock.
CREATE FUNCTION memory_index_add(nss text[], ids uuid[], contents text[], imps float8[], ats timestamptz[])
RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO namespace_stats AS s (namespace, episode_count, total_len)
    SELECT r.ns, count(*), coalesce(sum(d.dl), 0)
    FROM unnest(nss, ids) AS r(ns, id)
    LEFT JOIN (SELECT DISTINCT namespace, episode_id, dl FROM memory_index_toks(nss, ids, contents)) d
           ON d.namespace = r.ns AND d.episode_id = r.id
    GROUP BY r.ns ORDER BY r.ns
    ON CONFLICT (namespace) DO UPDATE
       SET episode_count = s.episode_count + excluded.episode_count,
           total_len = s.total_len + excluded.total_len;

    INSERT INTO term_stats AS t (namespace, lexeme, stem, df)
    SELECT namespace, lexeme, min(stem), count(*) FROM memory_index_toks(nss, ids, contents)
    GROUP BY namespace, lexeme ORDER BY namespace, lexeme
    ON CONFLICT (namespace, lexeme) DO UPDATE SET df = t.df + excluded.df;

    INSERT INTO postings (namespace, episode_id, lexeme, impact, importance, created_at)
    SELECT k.namespace, k.episode_id, k.lexeme,
           k.tf * 2.2 / (k.tf + 1.2 * (0.25 + 0.75 * k.dl / greatest(s.total_len::float8 / s.episode_count, 1))),
           r.imp, r.at
    FROM memory_index_toks(nss, ids, contents) k
    JOIN unnest(nss, ids, imps, ats) AS r(ns, id, imp, at) ON r.ns = k.namespace AND r.id = k.episode_id
    JOIN namespace_stats s ON s.namespace = k.namespace;
END
$fn$;

-- memory_index_remove undoes memory_index_add for episodes being deleted.
CREATE FUNCTION memory_index_remove(nss text[], ids uuid[], contents text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE namespace_stats AS s
       SET episode_count = s.episode_count - d.n, total_len = s.total_len - d.len
      FROM (SELECT r.ns, count(*) AS n, coalesce(sum(x.dl), 0) AS len
              FROM unnest(nss, ids) AS r(ns, id)
              LEFT JOIN (SELECT DISTINCT namespace, episode_id, dl FROM memory_index_toks(nss, ids, contents)) x
                     ON x.namespace = r.ns AND x.episode_id = r.id
             GROUP BY r.ns) d
     WHERE s.namespace = d.ns;

    UPDATE term_stats AS t SET df = t.df - d.n
      FROM (SELECT namespace, lexeme, count(*) AS n FROM memory_index_toks(nss, ids, contents)
             GROUP BY namespace, lexeme) d
     WHERE t.namespace = d.namespace AND t.lexeme = d.lexeme;
    DELETE FROM term_stats t USING (SELECT DISTINCT namespace, lexeme FROM memory_index_toks(nss, ids, contents)) d
     WHERE t.namespace = d.namespace AND t.lexeme = d.lexeme AND t.df <= 0;

    DELETE FROM postings p USING unnest(nss, ids) AS r(ns, id)
     WHERE p.namespace = r.ns AND p.episode_id = r.id;
END
$fn$;

CREATE FUNCTION episodes_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM memory_index_add(array_agg(namespace), array_agg(id), array_agg(content), array_agg(importance), array_agg(created_at))
       FROM (SELECT namespace, id, content, importance, created_at FROM new_rows ORDER BY namespace, id) n
     HAVING count(*) > 0;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION episodes_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM memory_index_remove(array_agg(namespace), array_agg(id), array_agg(content))
       FROM (SELECT namespace, id, content FROM old_rows ORDER BY namespace, id) o
     HAVING count(*) > 0;
    RETURN NULL;
END
$fn$;

-- Updates (an upsert with new text, importance or time) re-index the one
-- episode. A row trigger, because transition tables cannot be limited to
-- columns, and access bookkeeping (RecordAccess) must not pay for this.
CREATE FUNCTION episodes_after_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF OLD.content <> NEW.content OR OLD.namespace <> NEW.namespace OR OLD.id <> NEW.id THEN
        PERFORM memory_index_remove(ARRAY[OLD.namespace], ARRAY[OLD.id], ARRAY[OLD.content]);
        PERFORM memory_index_add(ARRAY[NEW.namespace], ARRAY[NEW.id], ARRAY[NEW.content],
                                 ARRAY[NEW.importance], ARRAY[NEW.created_at]);
    ELSE
        UPDATE postings SET importance = NEW.importance, created_at = NEW.created_at
         WHERE namespace = NEW.namespace AND episode_id = NEW.id;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER episodes_index_insert AFTER INSERT ON episodes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION episodes_after_insert();
CREATE TRIGGER episodes_index_delete AFTER DELETE ON episodes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION episodes_after_delete();
CREATE TRIGGER episodes_index_update AFTER UPDATE OF namespace, id, content, importance, created_at ON episodes
    FOR EACH ROW WHEN (OLD.content <> NEW.content OR OLD.namespace <> NEW.namespace OR OLD.id <> NEW.id
                       OR OLD.importance <> NEW.importance OR OLD.created_at <> NEW.created_at)
    EXECUTE FUNCTION episodes_after_update();

---- create above / drop below ----

DROP TABLE postings, term_stats, namespace_stats, episodes;
DROP FUNCTION episodes_after_insert(), episodes_after_delete(), episodes_after_update(),
    memory_index_add(text[], uuid[], text[], float8[], timestamptz[]), memory_index_remove(text[], uuid[], text[]),
    memory_index_toks(text[], uuid[], text[]);
