-- The payment's mirror (issue 11 item 8): what the terminal reported beyond the booking —
-- type, network, masked PAN, offline, fraud check, PSP attempts, the sale a refund refers
-- to — as JSON text, updated with the latest state. Never a clear card number: ingestion
-- refuses a payload that holds one.
ALTER TABLE platform_transactions ADD COLUMN details TEXT;
