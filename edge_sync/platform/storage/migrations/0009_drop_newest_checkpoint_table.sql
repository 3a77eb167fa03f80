-- The newest-checkpoint-per-terminal table of 0005 is no longer read nor written: since
-- 0007 every checkpoint is kept in platform_journal_checkpoint_chain, and both were written
-- together, so the chain already holds every row of it. A row the chain lacks all the same
-- (a database edited by hand) is carried over first, without a link (as 0007 did: checked
-- when it arrived), and the table is dropped.
INSERT INTO platform_journal_checkpoint_chain (terminal_id, entry_id, entry_hash, signed_at,
        message_id)
        SELECT o.terminal_id, o.entry_id, o.entry_hash, o.signed_at, o.message_id
        FROM platform_journal_checkpoints o
        WHERE NOT EXISTS (SELECT 1 FROM platform_journal_checkpoint_chain c
                          WHERE c.terminal_id = o.terminal_id AND c.entry_id = o.entry_id);
DROP TABLE platform_journal_checkpoints;
