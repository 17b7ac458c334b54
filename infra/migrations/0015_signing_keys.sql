-- Signed image URLs (#26): per-client signing keys, render jobs and the URL policy.

-- A client's URL signing keys. `id` is the public key id a URL names (`sk_...`); the secret is
-- kept as the webhook secrets are, since verifying an HMAC needs it. A retired key signs nothing.
CREATE TABLE signing_keys (
    id          text PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE INDEX signing_keys_client ON signing_keys (client_id, created_at);

-- Where a job came from: `api` (POST /v1/jobs, /v1/uploads) or `url` (a miss of a signed image
-- URL, rendered through the job path). URL renders are left out of listings and send no webhook.
-- `render_key`: the derived-cache key (infra/objects.py) a URL render writes its one variant to.
ALTER TABLE jobs
    ADD COLUMN origin text NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'url')),
    ADD COLUMN render_key text;

-- A client's URL policy: only templates in its URLs; widths restricted to a list (`320,640`);
-- the origins url: sources may name (`https://images.example.com`).
ALTER TABLE client_policies
    ADD COLUMN url_templates_only boolean,
    ADD COLUMN url_widths text,
    ADD COLUMN url_source_origins text;
