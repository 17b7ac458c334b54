-- What the engine reports beyond sizes (#15): each lossy variant's quality (with max_bytes, the
-- one the search chose), an animation's frame count, and the source described when a spec asks.
ALTER TABLE variants
    ADD COLUMN quality smallint,
    ADD COLUMN frames integer NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN source_info jsonb;
