"""PKCS#11 key store: sessions, tokenisation and vault, P2PE, signing, rotation."""
