-- Session working memory: the bounded buffer an agent's session keeps
-- between turns (the orchestrator's LAB_011 reads and writes it through
-- GetWorkingMemory / PutWorkingMemory).
--
-- working_memory holds one row per (namespace, session) with its version,
-- which PutWorkingMemory compares and advances (compare-and-set), so two
-- turns of a session never overwrite each other's update unseen.
-- working_memory_items holds the items. Each references its episode, so a
-- buffer can only hold episodes of its own namespace, and deleting an
-- episode (DeleteEpisode, or a namespace erase batch) removes it from
-- every buffer; the index on (namespace, episode_id) keeps that cascade
-- an index lookup per deleted episode.

CREATE TABLE working_memory (
    namespace  text COLLATE "C" NOT NULL CHECK (octet_length(namespace) BETWEEN 1 AND 128),
    session_id text COLLATE "C" NOT NULL CHECK (octet_length(session_id) BETWEEN 1 AND 128),
    version    bigint NOT NULL CHECK (version > 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, session_id)
);

CREATE TABLE working_memory_items (
    namespace            text COLLATE "C" NOT NULL,
    session_id           text COLLATE "C" NOT NULL,
    position             integer NOT NULL CHECK (position >= 0),
    episode_id           uuid NOT NULL,
    content              text NOT NULL CHECK (octet_length(content) <= 16384),
    origin               smallint NOT NULL CHECK (origin BETWEEN 1 AND 3),
    attention            double precision NOT NULL CHECK (attention >= 0 AND attention <= 1),
    turns_since_attended integer NOT NULL CHECK (turns_since_attended >= 0),
    rehearsals           integer NOT NULL CHECK (rehearsals >= 0),
    added_at             timestamptz NOT NULL,
    last_attended_at     timestamptz NOT NULL,
    PRIMARY KEY (namespace, session_id, episode_id),
    FOREIGN KEY (namespace, session_id) REFERENCES working_memory (namespace, session_id) ON DELETE CASCADE,
    FOREIGN KEY (namespace, episode_id) REFERENCES episodes (namespace, id) ON DELETE CASCADE
);

CREATE INDEX working_memory_items_episode ON working_memory_items (namespace, episode_id);
