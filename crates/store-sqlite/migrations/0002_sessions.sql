-- Web UI sessions. Only the SHA-256 of the session secret is stored; the secret lives in the
-- browser's HttpOnly cookie. Kept in step with the other adapter's 0002 (a test compares them).

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
