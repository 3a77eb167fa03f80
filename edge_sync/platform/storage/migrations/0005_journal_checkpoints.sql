-- The newest signed journal checkpoint of each terminal (#12 item 5): each new one must
-- link to it (same entry, same hash as the terminal's journal holds now), so a journal
-- truncated or rewritten on the terminal in between is seen here.

CREATE TABLE IF NOT EXISTS platform_journal_checkpoints (
        terminal_id TEXT PRIMARY KEY,
        entry_id BIGINT NOT NULL,
        entry_hash TEXT NOT NULL,
        signed_at TEXT NOT NULL,
        message_id TEXT NOT NULL);
