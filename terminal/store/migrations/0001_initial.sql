-- The edge node's durable store, adapted from seed 000's schema: amounts are integer
-- minor units + ISO 4217 code, keys are UUID text, and an order reference replaces the
-- booking foreign key. No clear card data: a token, the masked PAN and a vault blob only.

CREATE TABLE payments (
    id                     TEXT PRIMARY KEY,              -- UUID, the dual transaction's id
    order_ref              TEXT,                          -- the cash register's reference
    amount_minor           INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency               TEXT NOT NULL CHECK (length(currency) = 3),
    status                 TEXT NOT NULL,                 -- DESIGN §6 states
    payment_method         TEXT NOT NULL DEFAULT 'card',  -- card | contactless | manual
    gateway_provider       TEXT,                          -- cih | attijariwafa | bmce | stripe | paypal
    gateway_transaction_id TEXT,
    card_token             TEXT,
    pan_masked             TEXT,                          -- first 6 … last 4 at most
    vault_blob             BLOB,                          -- AES-GCM under an HSM key
    key_version            INTEGER,
    offline                INTEGER NOT NULL DEFAULT 0,    -- approved offline, not yet synced
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX payments_status ON payments (status);
CREATE INDEX payments_order_ref ON payments (order_ref);

CREATE TABLE payment_attempts (
    id               TEXT PRIMARY KEY,
    payment_id       TEXT NOT NULL REFERENCES payments (id),
    attempt_number   INTEGER NOT NULL,
    status           TEXT NOT NULL,
    error_code       TEXT,
    error_message    TEXT,
    gateway_response TEXT,                                -- JSON
    created_at       TEXT NOT NULL,
    UNIQUE (payment_id, attempt_number)
);

CREATE TABLE refunds (
    id                TEXT PRIMARY KEY,
    payment_id        TEXT NOT NULL REFERENCES payments (id),
    amount_minor      INTEGER NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL CHECK (length(currency) = 3),
    reason            TEXT,
    status            TEXT NOT NULL,
    gateway_refund_id TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE fraud_checks (
    id               TEXT PRIMARY KEY,
    payment_id       TEXT NOT NULL REFERENCES payments (id),
    risk_score       REAL CHECK (risk_score BETWEEN 0 AND 1),
    risk_level       TEXT CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
    checks_performed TEXT,                                -- JSON
    decision         TEXT CHECK (decision IN ('approve', 'decline', 'review')),
    created_at       TEXT NOT NULL
);

-- The proof-of-participation leg of each dual transaction (seed 001 §2.3).
CREATE TABLE pop_transactions (
    id            TEXT PRIMARY KEY,
    payment_id    TEXT NOT NULL UNIQUE REFERENCES payments (id),
    status        TEXT NOT NULL,
    pop_reference TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Store-and-forward: every message to the outside is written here in the same
-- transaction as the state change that caused it, and sent later, in order.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,    -- write order = send order
    message_id      TEXT NOT NULL UNIQUE,                 -- UUID, the receiver dedups on it
    destination     TEXT NOT NULL,                        -- platform | pop | psp:<name>
    kind            TEXT NOT NULL,                        -- transaction | advice | reversal | pop_record | alert ...
    idempotency_key TEXT NOT NULL,
    ref_id          TEXT,
    payload         TEXT NOT NULL,                        -- JSON, never clear card data
    priority        INTEGER NOT NULL DEFAULT 100,         -- lower first; reversals 10
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at      REAL NOT NULL,
    expires_at      REAL,
    delivered_at    REAL,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (state, destination, priority, next_attempt_at, id);

-- Append-only, hash-chained: each entry stores the SHA-256 of the previous entry.
CREATE TABLE audit_journal (
    id          INTEGER PRIMARY KEY,                      -- 1, 2, 3 ... without gaps
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    data        TEXT NOT NULL,                            -- canonical JSON, incl. outbox ids
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

-- The head of the chain, written in the same transaction as each entry, so that removing
-- the last entries is detected too.
CREATE TABLE audit_journal_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);

CREATE TRIGGER audit_journal_no_update BEFORE UPDATE ON audit_journal
BEGIN SELECT RAISE(ABORT, 'audit_journal is append-only'); END;
CREATE TRIGGER audit_journal_no_delete BEFORE DELETE ON audit_journal
BEGIN SELECT RAISE(ABORT, 'audit_journal is append-only'); END;
