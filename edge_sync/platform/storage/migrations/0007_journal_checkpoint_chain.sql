-- Every signed journal checkpoint of each terminal with the link it names (#12 item 5,
-- review of main): two platform workers on the shared subscription, or a resend, can
-- deliver checkpoints out of order. Keeping only the newest one made a late predecessor
-- look like a rollback and every later checkpoint link to a refused one. Each verified
-- checkpoint is kept here (it is signed by the terminal's key, so it is authentic), and
-- the links are checked between the stored neighbours whenever one arrives; a gap is
-- checked when it fills. prev_entry_hash is NULL for rows carried over from 0005 (their
-- link was checked when they arrived) and when the terminal's journal no longer held the
-- predecessor entry.
CREATE TABLE IF NOT EXISTS platform_journal_checkpoint_chain (
        terminal_id TEXT NOT NULL,
        entry_id BIGINT NOT NULL,
        entry_hash TEXT NOT NULL,
        prev_entry_id BIGINT,
        prev_entry_hash TEXT,
        signed_at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (terminal_id, entry_id));
INSERT INTO platform_journal_checkpoint_chain (terminal_id, entry_id, entry_hash, signed_at,
        message_id)
        SELECT terminal_id, entry_id, entry_hash, signed_at, message_id
        FROM platform_journal_checkpoints;
