-- A message id is unique per terminal, not fleet-wide: keyed on the fleet, terminal A could
-- publish B's future message ids first and get B's real transactions refused (#12 item 4).
-- Neither engine alters a primary key in place the same way: rebuild the table.

CREATE TABLE platform_messages_rekeyed (
        terminal_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        seq BIGINT NOT NULL,
        idempotency_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        booked INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        PRIMARY KEY (terminal_id, message_id));

INSERT INTO platform_messages_rekeyed
        (terminal_id, message_id, kind, seq, idempotency_key, created_at, received_at, booked,
         envelope)
    SELECT terminal_id, message_id, kind, seq, idempotency_key, created_at, received_at,
           booked, envelope
    FROM platform_messages;

DROP TABLE platform_messages;

ALTER TABLE platform_messages_rekeyed RENAME TO platform_messages;

CREATE INDEX IF NOT EXISTS platform_messages_by_terminal
        ON platform_messages (terminal_id, seq);
