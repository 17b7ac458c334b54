-- PixelFlow schema v1: tenants, keys, jobs, variants, webhook deliveries and their attempts.

CREATE TABLE clients (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Standard Webhooks signing secrets; several are active while one is being rotated out.
CREATE TABLE webhook_secrets (
    id              uuid PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    secret          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz
);
CREATE INDEX webhook_secrets_client ON webhook_secrets (client_id);

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    prefix          text NOT NULL,            -- shown in listings; never enough to authenticate
    key_hash        bytea NOT NULL UNIQUE,    -- sha256 of the whole key; keys are 192-bit random
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_client ON api_keys (client_id);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('created', 'queued', 'processing', 'succeeded', 'failed', 'canceled')),
    spec            jsonb NOT NULL,           -- normalised: full form, defaults written out
    spec_sha256     bytea NOT NULL,
    idempotency_key text,
    source_key      text NOT NULL,
    source_bytes    bigint,
    source_format   text,
    source_width    integer,
    source_height   integer,
    attempts        integer NOT NULL DEFAULT 0,
    error_code      text,
    error_message   text,
    trace_context   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, idempotency_key)
);
CREATE INDEX jobs_client_created ON jobs (client_id, created_at DESC, id DESC);
CREATE INDEX jobs_active ON jobs (client_id) WHERE status IN ('queued', 'processing');

CREATE TABLE variants (
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    variant_id      text NOT NULL,
    format          text NOT NULL,
    content_type    text NOT NULL,
    width           integer NOT NULL,
    height          integer NOT NULL,
    bytes           bigint NOT NULL,
    object_key      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, variant_id)
);

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,          -- sent as webhook-id; stable across retries
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event           text NOT NULL,
    url             text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id     uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    response_status integer,
    error           text,
    duration_ms     integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- A receiver that answered 410 Gone gets nothing more for this client.
CREATE TABLE disabled_endpoints (
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    url             text NOT NULL,
    disabled_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, url)
);
