-- The platform schema as it stood before migrations were recorded (IF NOT EXISTS: a
-- database created by that code is adopted as version 1 unchanged).

CREATE TABLE IF NOT EXISTS platform_terminals (
        terminal_id TEXT PRIMARY KEY,
        registered_at TEXT NOT NULL,
        last_seen_at TEXT,
        backlog TEXT,
        backlog_seq BIGINT,
        backlog_reported_at TEXT,
        messages BIGINT NOT NULL DEFAULT 0,
        unbooked BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0);

CREATE TABLE IF NOT EXISTS platform_terminal_keys (
        terminal_id TEXT NOT NULL REFERENCES platform_terminals (terminal_id),
        key_version INTEGER NOT NULL,
        public_key_pem TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        PRIMARY KEY (terminal_id, key_version));

CREATE TABLE IF NOT EXISTS platform_messages (
        message_id TEXT PRIMARY KEY,
        terminal_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        seq BIGINT NOT NULL,
        idempotency_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        booked INTEGER NOT NULL,
        envelope TEXT NOT NULL);

CREATE INDEX IF NOT EXISTS platform_messages_by_terminal
        ON platform_messages (terminal_id, seq);

CREATE TABLE IF NOT EXISTS platform_transactions (
        terminal_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        business_date TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        state TEXT,
        counted INTEGER NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (terminal_id, transaction_id));

CREATE INDEX IF NOT EXISTS platform_transactions_by_date
        ON platform_transactions (business_date, terminal_id);

CREATE TABLE IF NOT EXISTS platform_eod_totals (
        terminal_id TEXT NOT NULL,
        business_date TEXT NOT NULL,
        currency TEXT NOT NULL,
        count BIGINT NOT NULL,
        amount_minor BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (terminal_id, business_date, currency));

CREATE TABLE IF NOT EXISTS platform_rejections (
        terminal_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        received_at TEXT NOT NULL);

CREATE INDEX IF NOT EXISTS platform_rejections_by_time
        ON platform_rejections (received_at);

CREATE INDEX IF NOT EXISTS platform_rejections_by_terminal
        ON platform_rejections (terminal_id, received_at);
