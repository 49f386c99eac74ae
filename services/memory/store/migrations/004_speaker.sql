-- Who said or wrote an episode (Episode.speaker): a participant's name,
-- "user", an agent's name; '' when the writer gave none. Recall prefers a
-- speaker's episodes when the query names that speaker, and filters by
-- speaker on request; ListEpisodes filters by it too.
--
-- namespace_speakers counts each namespace's episodes per speaker, kept
-- exact by statement-level triggers in the writing transaction, so recall
-- finds the names a query mentions with one index lookup. Writers of a
-- namespace hold its namespace_stats row first (store.go), so these
-- updates cannot deadlock; rows are taken in key order.
ALTER TABLE episodes ADD COLUMN speaker text COLLATE "C" NOT NULL DEFAULT ''
    CHECK (octet_length(speaker) <= 128);

-- Speaker-filtered recall and listing, in time order.
CREATE INDEX episodes_ns_speaker_created ON episodes (namespace, speaker, created_at, id);

CREATE TABLE namespace_speakers (
    namespace text COLLATE "C" NOT NULL,
    speaker   text COLLATE "C" NOT NULL,
    -- lower(speaker), for matching the words of a query.
    folded    text COLLATE "C" NOT NULL,
    episodes  bigint NOT NULL,
    PRIMARY KEY (namespace, speaker)
);
CREATE INDEX namespace_speakers_folded ON namespace_speakers (namespace, folded);

CREATE FUNCTION memory_speakers_add() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO namespace_speakers AS s (namespace, speaker, folded, episodes)
    SELECT namespace, speaker, lower(speaker), count(*) FROM new_rows WHERE speaker <> ''
    GROUP BY namespace, speaker ORDER BY namespace, speaker
    ON CONFLICT (namespace, speaker) DO UPDATE SET episodes = s.episodes + excluded.episodes;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION memory_speakers_remove() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Two statements: one statement may not both update and delete a row.
    UPDATE namespace_speakers s SET episodes = s.episodes - g.n
      FROM (SELECT namespace, speaker, count(*) AS n FROM old_rows WHERE speaker <> ''
            GROUP BY namespace, speaker ORDER BY namespace, speaker) g
     WHERE s.namespace = g.namespace AND s.speaker = g.speaker;
    DELETE FROM namespace_speakers s USING (SELECT DISTINCT namespace, speaker FROM old_rows) g
     WHERE s.namespace = g.namespace AND s.speaker = g.speaker AND s.episodes <= 0;
    RETURN NULL;
END
$fn$;

-- A rewrite that changes the speaker moves one count (a row trigger: the
-- rare case, and RecordAccess's updates must not pay for it).
CREATE FUNCTION memory_speakers_move() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF OLD.speaker <> '' THEN
        UPDATE namespace_speakers SET episodes = episodes - 1
         WHERE namespace = OLD.namespace AND speaker = OLD.speaker;
        DELETE FROM namespace_speakers
         WHERE namespace = OLD.namespace AND speaker = OLD.speaker AND episodes <= 0;
    END IF;
    IF NEW.speaker <> '' THEN
        INSERT INTO namespace_speakers AS s (namespace, speaker, folded, episodes)
        VALUES (NEW.namespace, NEW.speaker, lower(NEW.speaker), 1)
        ON CONFLICT (namespace, speaker) DO UPDATE SET episodes = s.episodes + 1;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER episodes_speakers_insert AFTER INSERT ON episodes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_speakers_add();
CREATE TRIGGER episodes_speakers_delete AFTER DELETE ON episodes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_speakers_remove();
CREATE TRIGGER episodes_speakers_update AFTER UPDATE OF speaker ON episodes
    FOR EACH ROW WHEN (OLD.speaker <> NEW.speaker) EXECUTE FUNCTION memory_speakers_move();

---- create above / drop below ----

DROP TRIGGER episodes_speakers_insert ON episodes;
DROP TRIGGER episodes_speakers_delete ON episodes;
DROP TRIGGER episodes_speakers_update ON episodes;
DROP FUNCTION memory_speakers_add(), memory_speakers_remove(), memory_speakers_move();
DROP TABLE namespace_speakers;
ALTER TABLE episodes DROP COLUMN speaker;
