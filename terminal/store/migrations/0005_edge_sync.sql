-- Edge sync (issue 7): what the outbox worker and the downlink handler keep beyond 0001.

-- Claim order within a destination: pending rows by (priority, id), due or not (the first
-- row that is not due stops the claim: per-destination ordering).
CREATE INDEX outbox_claim ON outbox (destination, state, priority, id);
-- A PoP record waits for its financial leg: the rows of one payment share its ref_id.
CREATE INDEX outbox_ref ON outbox (ref_id, id) WHERE ref_id IS NOT NULL;
-- When a row was dead-lettered (TTL passed, rejected, attempts exhausted).
ALTER TABLE outbox ADD COLUMN dead_at REAL;

-- Last success / last error per destination, for `etika sync status`.
CREATE TABLE sync_status (
    destination     TEXT PRIMARY KEY,
    last_success_at REAL,
    last_error_at   REAL,
    last_error      TEXT
);

-- Downlinks seen (config is retained and comes again on every connection: apply once).
CREATE TABLE downlink_log (
    message_id  TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    received_at REAL NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    reason      TEXT
);

-- Blacklist pushed by the platform: card tokens, BIN prefixes or card fingerprints (the
-- keyed HMAC-SHA256 of the PAN made in the HSM with the merchant's shared tokenisation key;
-- an unkeyed PAN digest could be reversed by trying every PAN of a BIN).
CREATE TABLE blacklist (
    entry_type TEXT NOT NULL CHECK (entry_type IN ('token', 'bin', 'fingerprint')),
    value      TEXT NOT NULL,
    reason     TEXT,
    version    INTEGER NOT NULL,
    added_at   REAL NOT NULL,
    PRIMARY KEY (entry_type, value)
);

-- FX rates pushed by the platform: 1 unit of `currency` = `rate` units of `base`
-- (decimal text, never float).
CREATE TABLE fx_rates (
    currency   TEXT PRIMARY KEY CHECK (length(currency) = 3),
    base       TEXT NOT NULL CHECK (length(base) = 3),
    rate       TEXT NOT NULL,
    as_of      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
