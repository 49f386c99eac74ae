-- Each content is tokenized once per statement. 001's memory_index_add and
-- memory_index_remove called memory_index_toks three times each (so a
-- rewrite with new content tokenized six times, per row), which made a
-- batch of 50 × 15 KB of distinct words outlast QUERY_TIMEOUT. Here each
-- function is one statement whose tokens are one materialized CTE shared
-- by the updates of namespace_stats, term_stats and postings. What is
-- computed (counts, df, BM25 impacts) is exactly 001's, so ranking is
-- unchanged.
--
-- Order within one statement: the namespace_stats rows were locked by the
-- writing statement's own lockNamespaces step (see store.go) before any of
-- this runs; term_stats rows are taken in key order.

CREATE OR REPLACE FUNCTION memory_index_add(nss text[], ids uuid[], contents text[], imps float8[], ats timestamptz[])
RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    WITH k AS MATERIALIZED (
        SELECT * FROM memory_index_toks(nss, ids, contents)
    ), docs AS (
        SELECT r.ns, count(*) AS n, coalesce(sum(d.dl), 0) AS len
        FROM unnest(nss, ids) AS r(ns, id)
        LEFT JOIN (SELECT DISTINCT namespace, episode_id, dl FROM k) d
               ON d.namespace = r.ns AND d.episode_id = r.id
        GROUP BY r.ns
    ), s AS (
        INSERT INTO namespace_stats AS s (namespace, episode_count, total_len)
        SELECT ns, n, len FROM docs ORDER BY ns
        ON CONFLICT (namespace) DO UPDATE
           SET episode_count = s.episode_count + excluded.episode_count,
               total_len = s.total_len + excluded.total_len
        RETURNING s.namespace, s.episode_count, s.total_len
    ), t AS (
        INSERT INTO term_stats AS t (namespace, lexeme, stem, df)
        SELECT namespace, lexeme, min(stem), count(*) FROM k
        GROUP BY namespace, lexeme ORDER BY namespace, lexeme
        ON CONFLICT (namespace, lexeme) DO UPDATE SET df = t.df + excluded.df
    )
    INSERT INTO postings (namespace, episode_id, lexeme, impact, importance, created_at)
    SELECT k.namespace, k.episode_id, k.lexeme,
           k.tf * 2.2 / (k.tf + 1.2 * (0.25 + 0.75 * k.dl / greatest(s.total_len::float8 / s.episode_count, 1))),
           r.imp, r.at
    FROM k
    JOIN unnest(nss, ids, imps, ats) AS r(ns, id, imp, at) ON r.ns = k.namespace AND r.id = k.episode_id
    JOIN s ON s.namespace = k.namespace;
END
$fn$;

-- A term's rows that would reach df 0 are deleted, the others decremented:
-- disjoint rows, so one statement can do both.
CREATE OR REPLACE FUNCTION memory_index_remove(nss text[], ids uuid[], contents text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    WITH k AS MATERIALIZED (
        SELECT namespace, episode_id, lexeme, dl FROM memory_index_toks(nss, ids, contents)
    ), docs AS (
        SELECT r.ns, count(*) AS n, coalesce(sum(x.dl), 0) AS len
        FROM unnest(nss, ids) AS r(ns, id)
        LEFT JOIN (SELECT DISTINCT namespace, episode_id, dl FROM k) x
               ON x.namespace = r.ns AND x.episode_id = r.id
        GROUP BY r.ns
    ), terms AS (
        SELECT namespace, lexeme, count(*) AS n FROM k GROUP BY namespace, lexeme
    ), s AS (
        UPDATE namespace_stats AS s
           SET episode_count = s.episode_count - docs.n, total_len = s.total_len - docs.len
          FROM docs WHERE s.namespace = docs.ns
    ), dec AS (
        UPDATE term_stats AS t SET df = t.df - terms.n
          FROM terms
         WHERE t.namespace = terms.namespace AND t.lexeme = terms.lexeme AND t.df > terms.n
    ), gone AS (
        DELETE FROM term_stats AS t USING terms
         WHERE t.namespace = terms.namespace AND t.lexeme = terms.lexeme AND t.df <= terms.n
    )
    DELETE FROM postings p USING unnest(nss, ids) AS r(ns, id)
     WHERE p.namespace = r.ns AND p.episode_id = r.id;
END
$fn$;

---- create above / drop below ----

CREATE OR REPLACE FUNCTION memory_index_add(nss text[], ids uuid[], contents text[], imps float8[], ats timestamptz[])
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

CREATE OR REPLACE FUNCTION memory_index_remove(nss text[], ids uuid[], contents text[]) RETURNS void
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
