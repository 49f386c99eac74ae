-- Metadata filters on Recall and ListEpisodes (equality on keys, all must
-- match: metadata @> the filter). jsonb_path_ops indexes exactly that
-- containment, so a filter is answered from the index and the namespace's
-- own index together, without reading the namespace.
CREATE INDEX episodes_metadata ON episodes USING gin (metadata jsonb_path_ops);

---- create above / drop below ----

DROP INDEX episodes_metadata;
