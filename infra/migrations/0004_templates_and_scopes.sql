-- Versioned templates (presets): a named spec per client; every change is a new immutable
-- version, so a job pinned to `product@3` always runs what version 3 said.
CREATE TABLE templates (
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name            text NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    spec            jsonb NOT NULL,           -- as given: may hold {"$param": name} placeholders
    parameters      jsonb NOT NULL,           -- name -> {"type", "default"}
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, name, version)
);

-- A job made from a template records which version it resolved (its spec is the resolved one).
ALTER TABLE jobs ADD COLUMN template_name text;
ALTER TABLE jobs ADD COLUMN template_version integer;

-- Scoped keys: NULL scopes is full access (every key made before scopes existed). A presets-only
-- key may create jobs only from templates, never from a free-form spec.
ALTER TABLE api_keys ADD COLUMN scopes text[];
ALTER TABLE api_keys ADD COLUMN presets_only boolean NOT NULL DEFAULT false;
