-- Key rotation that revokes (#12 item 3): an older key version is retired a grace period
-- after the next one is registered, and an operator can revoke a version at once
-- (etika platform revoke-key). Neither deletes the key: what it signed stays verifiable.

ALTER TABLE platform_terminal_keys ADD COLUMN retire_after TEXT;

ALTER TABLE platform_terminal_keys ADD COLUMN revoked_at TEXT;
