-- Sync hardening (#12 items 1 and 5).

-- The newest downlink applied (or refused after verification) per kind: a downlink is
-- applied only when its signed per-terminal sequence is strictly above this one.
CREATE TABLE downlink_sequence (
    kind        TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    message_id  TEXT NOT NULL,
    updated_at  REAL NOT NULL
);

-- The blacklist version and the FX as_of in force: an older one pushed later is refused
-- (kept apart from the rows, which an empty 'replace' leaves none of).
CREATE TABLE fleet_versions (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL
);

-- The journal head signed with the terminal's HSM key, at intervals and at every end of
-- day; each is also uplinked, so truncating or rewriting the journal here cannot go unseen.
CREATE TABLE journal_checkpoints (
    id          INTEGER PRIMARY KEY,
    entry_id    INTEGER NOT NULL,
    entry_hash  TEXT NOT NULL,
    signed_at   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    signature   TEXT NOT NULL
);
CREATE TRIGGER journal_checkpoints_no_update BEFORE UPDATE ON journal_checkpoints
BEGIN SELECT RAISE(ABORT, 'journal_checkpoints is append-only'); END;
CREATE TRIGGER journal_checkpoints_no_delete BEFORE DELETE ON journal_checkpoints
BEGIN SELECT RAISE(ABORT, 'journal_checkpoints is append-only'); END;
