-- The tokenisation map (hsm.base.TokenRegistry, terminal/store/token_map.py).
-- A token's 6 middle digits cannot hold an HMAC without collisions, so this table makes
-- tokens unique: each (fingerprint, key version) has one token, each token one card, across
-- every key version. The fingerprint is the HMAC-SHA256 of the PAN made inside the HSM;
-- no clear card data is stored.

CREATE TABLE token_map (
    fingerprint  TEXT    NOT NULL CHECK (length(fingerprint) = 64),  -- hex HMAC-SHA256
    key_version  INTEGER NOT NULL CHECK (key_version >= 1),          -- tokenisation key
    token        TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (fingerprint, key_version)
) WITHOUT ROWID;
