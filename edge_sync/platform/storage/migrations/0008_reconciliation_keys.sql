-- Reconciliation looks payments up by key (issue 11 item 8), never by scanning a capped
-- list: the keys a PSP or the PoP ledger names a payment by, and the sale a refund gives
-- back for, as indexed columns beside the JSON details. psp_advice_key is '' for an id
-- that is not a UUID (no advice key), NULL only for a row written before this migration;
-- the storage fills those on open (the advice key is a UUIDv5 no SQL engine computes).
ALTER TABLE platform_transactions ADD COLUMN psp_advice_key TEXT;
ALTER TABLE platform_transactions ADD COLUMN pop_record_id TEXT;
ALTER TABLE platform_transactions ADD COLUMN refers_to TEXT;
CREATE INDEX IF NOT EXISTS platform_transactions_by_advice_key
        ON platform_transactions (psp_advice_key);
CREATE INDEX IF NOT EXISTS platform_transactions_by_pop_record
        ON platform_transactions (pop_record_id);
CREATE INDEX IF NOT EXISTS platform_transactions_by_refers_to
        ON platform_transactions (refers_to);
CREATE INDEX IF NOT EXISTS platform_transactions_by_id
        ON platform_transactions (transaction_id);
