-- Payments (issue 11): what the dual-transaction manager keeps beyond seed 000's columns.
-- Still no clear card data: the network, the EMV summary (TVR, TSI, cryptogram, AID) and
-- the receipt are public facts of the transaction; the fingerprint is an HSM-keyed MAC.

ALTER TABLE payments ADD COLUMN network TEXT;
ALTER TABLE payments ADD COLUMN card_fingerprint TEXT;
ALTER TABLE payments ADD COLUMN entry_mode TEXT;                -- chip | contactless
ALTER TABLE payments ADD COLUMN auth_code TEXT;
ALTER TABLE payments ADD COLUMN reason TEXT;                    -- why it ended as it did, in words
ALTER TABLE payments ADD COLUMN emv TEXT;                       -- JSON: AID, label, TVR, TSI, CVM, cryptogram, ARC
ALTER TABLE payments ADD COLUMN route_connectors TEXT;          -- JSON list: the PSPs it may have reached
ALTER TABLE payments ADD COLUMN psp_reference TEXT;             -- JSON PspReference of the authorisation
ALTER TABLE payments ADD COLUMN receipt TEXT;                   -- JSON receipt data (masked PAN only)
ALTER TABLE payments ADD COLUMN captured_minor INTEGER;         -- what the customer was charged
CREATE INDEX payments_fingerprint ON payments (card_fingerprint, created_at);
CREATE INDEX payments_created ON payments (created_at);

-- One PoP record per payment (the sale's); its cancel is a state of that record.
ALTER TABLE pop_transactions ADD COLUMN sequence INTEGER;
ALTER TABLE pop_transactions ADD COLUMN reason TEXT;

-- A refund or a void carries its own PoP counterpart record.
ALTER TABLE refunds ADD COLUMN kind TEXT NOT NULL DEFAULT 'refund';         -- refund | void
ALTER TABLE refunds ADD COLUMN pop_record_id TEXT;
ALTER TABLE refunds ADD COLUMN psp_reference TEXT;                          -- JSON
CREATE INDEX refunds_payment ON refunds (payment_id);

-- The PoP back end refuses a record whose sequence is not above the last it saw from this
-- terminal: the counter survives restarts and only grows.
CREATE TABLE pop_sequence (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last      INTEGER NOT NULL CHECK (last >= 0)
);
