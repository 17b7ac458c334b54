-- Dashboard accounts: people sign in with an email and password and act for one client (tenant)
-- as its owner or a member. API keys stay how machines authenticate.
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    email           text NOT NULL,            -- stored lower-cased: one account per address
    password_hash   text NOT NULL,            -- argon2id, in its PHC string form (parameters inside)
    role            text NOT NULL CHECK (role IN ('owner', 'member')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_client ON users (client_id);

-- Browser sessions. The cookie holds a random token; only its SHA-256 is stored, so a leaked
-- table cannot be replayed. Each session has its own CSRF token. Logout and disabling a user
-- revoke server-side: the cookie alone proves nothing once its row is revoked or expired.
CREATE TABLE sessions (
    token_hash      bytea PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

-- An owner invites a person into the client: the link carries a random token (only its SHA-256
-- is stored), good once, until it expires. Invitations work whether or not sign-up is open.
CREATE TABLE invites (
    token_hash      bytea PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    email           text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'member')),
    invited_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz
);
CREATE INDEX invites_client ON invites (client_id);
