-- The content CHECK of 001 said 16 KiB while the API accepts 64 KiB
-- (episode.MaxContentBytes), so content between the two failed as an
-- internal error. The schema now agrees with the API; a store test reads
-- every length CHECK back from pg_catalog and compares it with episode's
-- constants, so they cannot drift apart again.
ALTER TABLE episodes DROP CONSTRAINT episodes_content_check,
    ADD CONSTRAINT episodes_content_check CHECK (octet_length(content) <= 65536);

---- create above / drop below ----

ALTER TABLE episodes DROP CONSTRAINT episodes_content_check,
    ADD CONSTRAINT episodes_content_check CHECK (octet_length(content) <= 16384);
