-- The runtime (issue 8): teams of real users, runtime keys, usage counters and quota leases.
-- Kept in step with the other adapter's 0004 (a test compares them). Instants are BIGINT
-- milliseconds since the Unix epoch (UTC); token amounts are BIGINT.

-- A resource's team: users of its company (RUNTIME.md §1). Replaces resource_members, whose
-- rows could name a person who was not a user; see the data migration below.
CREATE TABLE team_members (
    resource_id TEXT NOT NULL REFERENCES resources (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (resource_id, user_id)
);
-- "The resources whose team I am on" (the Portal's list).
CREATE INDEX team_members_user ON team_members (user_id, resource_id);

-- Existing members become users: each email that is nobody's login yet becomes a user (role
-- member, no password) of the company of the first resource that named it; the id is made
-- from that resource's id (unique, one member row per resource before this migration).
INSERT INTO users (id, company_id, name, email, role, password_hash, created_at, disabled_at)
SELECT 'usr_' || substr(m.resource_id, 5), r.company_id, m.name, m.email, 'member', NULL, m.added_at, NULL
FROM resource_members m JOIN resources r ON r.id = m.resource_id
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.email = m.email)
  AND NOT EXISTS (SELECT 1 FROM resource_members e WHERE e.email = m.email
                  AND (e.added_at < m.added_at OR (e.added_at = m.added_at AND e.resource_id < m.resource_id)));
-- Then every member row whose email is a user of the resource's own company joins the team.
-- A row whose email is another company's login is dropped: that person never had access to
-- this company's Portal (a company admin can add a member).
INSERT INTO team_members (resource_id, user_id, added_at)
SELECT m.resource_id, u.id, m.added_at
FROM resource_members m JOIN resources r ON r.id = m.resource_id
JOIN users u ON u.email = m.email AND u.company_id = r.company_id;
DROP TABLE resource_members;

-- Runtime keys: only the SHA-256 of the secret is stored; the public id finds the row.
CREATE TABLE runtime_keys (
    id TEXT PRIMARY KEY,
    resource_id TEXT NOT NULL REFERENCES resources (id),
    public_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    last_used_at BIGINT,
    revoked_at BIGINT,
    -- A companion key (on a knowledge base's embeddings resource): the knowledge base, and the
    -- knowledge-base key it was made with (revoked together).
    companion_of TEXT REFERENCES resources (id),
    parent_key_id TEXT REFERENCES runtime_keys (id)
);
CREATE INDEX runtime_keys_resource ON runtime_keys (resource_id, created_at);
CREATE INDEX runtime_keys_parent ON runtime_keys (parent_key_id) WHERE parent_key_id IS NOT NULL;
CREATE INDEX runtime_keys_companion ON runtime_keys (companion_of) WHERE companion_of IS NOT NULL;

-- Usage per resource and UTC day ('YYYY-MM-DD'): the Portal's charts and CSV.
CREATE TABLE usage_days (
    resource_id TEXT NOT NULL REFERENCES resources (id),
    day TEXT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    api_calls BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, day)
);

-- Usage per resource and bundle month (keyed by its start): what the quota is checked against.
CREATE TABLE usage_months (
    resource_id TEXT NOT NULL REFERENCES resources (id),
    month_start BIGINT NOT NULL,
    input_used BIGINT NOT NULL DEFAULT 0,
    output_used BIGINT NOT NULL DEFAULT 0,
    api_calls BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, month_start)
);

-- Quota leased to a server instance (holder): counts against the quota while expires_at (wall
-- clock) lies ahead. Invariant per resource and month: used + sum of live held <= quota.
CREATE TABLE quota_leases (
    resource_id TEXT NOT NULL REFERENCES resources (id),
    month_start BIGINT NOT NULL,
    holder TEXT NOT NULL,
    input_held BIGINT NOT NULL DEFAULT 0 CHECK (input_held >= 0),
    output_held BIGINT NOT NULL DEFAULT 0 CHECK (output_held >= 0),
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (resource_id, month_start, holder)
);
-- The group commit renews one holder's leases; housekeeping deletes expired ones.
CREATE INDEX quota_leases_holder ON quota_leases (holder, expires_at);
CREATE INDEX quota_leases_expires ON quota_leases (expires_at);
