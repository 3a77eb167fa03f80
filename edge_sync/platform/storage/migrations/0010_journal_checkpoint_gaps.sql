-- The open gaps of each terminal's checkpoint chain as rows: a checkpoint whose
-- predecessor has not arrived. Finding them by joining the chain to itself scans every
-- checkpoint ever received, on every fleet listing; kept here instead, written with each
-- checkpoint in its commit (a row when its predecessor is missing, deleted when the
-- predecessor arrives), the listing reads only what is open. Filled once from the chain.
CREATE TABLE IF NOT EXISTS platform_journal_checkpoint_gaps (
        terminal_id TEXT NOT NULL,
        entry_id BIGINT NOT NULL,
        prev_entry_id BIGINT NOT NULL,
        PRIMARY KEY (terminal_id, entry_id));
CREATE INDEX IF NOT EXISTS platform_journal_checkpoint_gaps_by_prev
        ON platform_journal_checkpoint_gaps (terminal_id, prev_entry_id);
INSERT INTO platform_journal_checkpoint_gaps (terminal_id, entry_id, prev_entry_id)
        SELECT c.terminal_id, c.entry_id, c.prev_entry_id
        FROM platform_journal_checkpoint_chain c
        WHERE c.prev_entry_id > 0 AND NOT EXISTS (
                SELECT 1 FROM platform_journal_checkpoint_chain p
                WHERE p.terminal_id = c.terminal_id AND p.entry_id = c.prev_entry_id);
