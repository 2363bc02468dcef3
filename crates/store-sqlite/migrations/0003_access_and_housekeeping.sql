-- API tokens that expire and record their last use, users the operator can disable, the
-- scheduler's hold on a due change that failed, and the indexes the periodic clean-up of
-- sessions and idempotency keys deletes by. Kept in step with the other adapter's 0003
-- (a test compares them).

ALTER TABLE users ADD COLUMN disabled_at BIGINT;

ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);

-- A due change that failed this many times in a row waits until due_retry_at (see
-- genai_store::due_retry_delay); any successful write to the resource clears both.
ALTER TABLE resources ADD COLUMN due_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE resources ADD COLUMN due_retry_at BIGINT;

CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
