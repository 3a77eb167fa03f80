"""The key store on a real SoftHSM2 token: tokens, vault, attributes, signing, threads."""

from __future__ import annotations

import asyncio
import random
import threading

import pkcs11.exceptions as p11
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pkcs11 import Attribute, ObjectClass

from hsm import AsyncKeyStore, KeyPurpose, KeyStore, luhn_valid, verify_signature
from hsm import keys as k
from hsm.cards import CardData, TokenisedCard, candidate_tokens, mask_pan
from hsm.errors import (
    KeyMissingError,
    SignatureInvalidError,
    TokenSpaceExhaustedError,
    VaultBlobInvalidError,
)
from hsm.fake import InMemoryTokenRegistry
from tests.hsm.pans import pan_with_middle, with_check_digit

pytestmark = pytest.mark.hsm

PAN = "4761739001010119"
EXPIRY = "2712"


@pytest.fixture
def store(hsm_keystore: KeyStore) -> KeyStore:
    """A key store on the session token with a registry of its own (no cross-test state)."""
    return KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())


def test_token_is_deterministic_keeps_bin_last4_and_fails_luhn(store: KeyStore) -> None:
    """Same PAN and key version → same token; first 6/last 4 kept; the token fails Luhn."""
    first = store.tokenise(PAN, EXPIRY)
    again = KeyStore(store.owner, InMemoryTokenRegistry()).tokenise(PAN, EXPIRY)
    assert first.token == again.token and first.fingerprint == again.fingerprint
    assert len(first.token) == len(PAN) and first.token.isdigit()
    assert first.token[:6] == PAN[:6] and first.token[-4:] == PAN[-4:]
    assert first.token != PAN and not luhn_valid(first.token)
    assert len(first.fingerprint) == 64 and first.key_version == store.tokenisation_key_version
    assert first.masked_pan == "476173…0119"
    assert first.vault_blob != again.vault_blob  # a fresh random IV every time


def test_token_middle_digits_come_from_the_in_token_hmac(store: KeyStore) -> None:
    """With no collision the token is candidate 0 of the HMAC computed in the token."""
    ref = store.tokenise_pan(PAN)
    assert ref.token == next(candidate_tokens(PAN, bytes.fromhex(ref.fingerprint)))
    assert store.fingerprint(PAN) == ref.fingerprint


def test_tokenised_card_repr_has_no_card_data(store: KeyStore) -> None:
    """Nothing the key store returns shows the PAN or the expiry in its repr."""
    card = store.tokenise(PAN, EXPIRY)
    for text in (repr(card), repr(store), repr(store.detokenise(card.token, card.vault_blob))):
        assert PAN not in text and PAN[6:12] not in text


def test_rejects_luhn_failing_input_so_tokens_are_never_retokenised(store: KeyStore) -> None:
    """A token (or a mistyped PAN) fails Luhn and is refused as input."""
    token = store.tokenise_pan(PAN).token
    with pytest.raises(ValueError, match="Luhn"):
        store.tokenise(token, EXPIRY)


middles_13 = st.sets(st.integers(0, 99), min_size=2, max_size=60)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefixes=middles_13, order_seed=st.integers(0, 2**32))
def test_different_pans_never_share_a_token(hsm_keystore: KeyStore, prefixes: set[int],
                                            order_seed: int) -> None:
    """Up to 60 PANs with the same BIN and last 4 in a ~900-token space all get distinct,
    Luhn-failing tokens, and a second pass returns the same tokens."""
    store = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    pans = [pan_with_middle("476173", f"{p:02d}0", "0119") for p in prefixes]
    random.Random(order_seed).shuffle(pans)
    tokens = {pan: store.tokenise_pan(pan).token for pan in pans}
    assert len(set(tokens.values())) == len(pans)
    assert all(not luhn_valid(t) and t[:6] == "476173" and t[-4:] == "0119"
               for t in tokens.values())
    assert {pan: store.tokenise_pan(pan).token for pan in pans} == tokens


def test_forced_collision_is_resolved_deterministically(hsm_keystore: KeyStore) -> None:
    """Two PANs whose HMACs give the same first candidate: the first bound keeps it, the
    second takes its next free candidate, and replaying the order replays the result."""
    store = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    pans = [pan_with_middle("476173", f"{p:02d}0", "0119") for p in range(100)]
    by_first: dict[str, list[str]] = {}
    for pan in pans:
        first = next(candidate_tokens(pan, bytes.fromhex(store.fingerprint(pan))))
        by_first.setdefault(first, []).append(pan)
    a, b = next(group for group in by_first.values() if len(group) >= 2)[:2]

    def run() -> tuple[str, str]:
        fresh = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
        return fresh.tokenise_pan(a).token, fresh.tokenise_pan(b).token

    token_a, token_b = run()
    second = list(candidate_tokens(b, bytes.fromhex(store.fingerprint(b))))
    assert token_a == second[0] != token_b
    assert token_b == next(t for t in second if t != token_a)
    assert run() == (token_a, token_b)


def test_full_token_space_is_reported(hsm_keystore: KeyStore) -> None:
    """When every candidate of a 13-digit PAN's BIN/last-4 is taken (the smallest token space
    a valid PAN has, ISO/IEC 7812-1), the error says so."""
    registry = InMemoryTokenRegistry()
    store = KeyStore(hsm_keystore.owner, registry)
    pan = with_check_digit("411111001234")
    candidates = sorted(set(candidate_tokens(pan, bytes(32))))
    for n, token in enumerate(candidates):
        assert registry.bind(f"{n:064x}", 1, [token]) == token
    assert len(registry) == len(candidates) == 900
    with pytest.raises(TokenSpaceExhaustedError, match=mask_pan(pan)) as info:
        store.tokenise_pan(pan)
    assert pan not in str(info.value)


def test_vault_round_trip_and_p2pe_path(store: KeyStore) -> None:
    """A vault blob opens to the same card, and the authorised path re-encrypts it for a PSP."""
    from hsm.p2pe import decrypt_card

    card = store.tokenise(PAN, EXPIRY)
    assert store.detokenise(card.token, card.vault_blob) == CardData(PAN, EXPIRY)
    psp = ec.generate_private_key(ec.SECP256R1())
    psp_pem = psp.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    envelope = store.encrypt_for_psp(card.token, card.vault_blob, psp_pem, b"txn-42")
    assert decrypt_card(psp, envelope, b"txn-42") == CardData(PAN, EXPIRY)


@pytest.mark.parametrize(
    ("what",         "offset"),
    [
        ("ciphertext",   20),
        ("tag",          -1),
        ("iv",           3),
        ("iv-last",      14),
    ],
)
def test_changed_blob_or_iv_is_rejected(store: KeyStore, what: str, offset: int) -> None:
    """Flipping one bit of the ciphertext, tag or IV makes the blob fail authentication."""
    card = store.tokenise(PAN, EXPIRY)
    blob = bytearray(card.vault_blob)
    blob[offset] ^= 0x01
    with pytest.raises(VaultBlobInvalidError, match="does not authenticate"):
        store.detokenise(card.token, bytes(blob))


def test_changed_associated_data_is_rejected(store: KeyStore) -> None:
    """The blob is bound to its token and key version (the GCM associated data)."""
    card = store.tokenise(PAN, EXPIRY)
    other = store.tokenise("5555555555554444", EXPIRY)
    with pytest.raises(VaultBlobInvalidError):
        store.detokenise(other.token, card.vault_blob)
    store.rotate(KeyPurpose.VAULT)  # so that a version exists to lie about
    relabelled = bytearray(card.vault_blob)
    relabelled[1:3] = store.vault_key_version.to_bytes(2, "big")
    with pytest.raises(VaultBlobInvalidError):
        store.detokenise(card.token, bytes(relabelled))


@pytest.mark.parametrize("blob", [b"", b"\x02" + bytes(40), b"\x01\x00\x00" + bytes(40)])
def test_malformed_blob_is_rejected(store: KeyStore, blob: bytes) -> None:
    """Short blobs, unknown formats and version 0 are refused before touching the token."""
    with pytest.raises(VaultBlobInvalidError):
        store.detokenise("4761730000000119", blob)


def test_blob_of_a_deleted_key_version_says_key_missing(store: KeyStore) -> None:
    """A blob naming a vault key version the token does not hold raises KeyMissingError."""
    card = store.tokenise(PAN, EXPIRY)
    blob = bytearray(card.vault_blob)
    blob[1:3] = (999).to_bytes(2, "big")
    with pytest.raises(KeyMissingError, match="etika-vault-v999"):
        store.detokenise(card.token, bytes(blob))


@pytest.mark.parametrize("purpose", list(KeyPurpose))
def test_keys_are_sensitive_and_not_extractable(hsm_keystore: KeyStore,
                                                purpose: KeyPurpose) -> None:
    """CKA_SENSITIVE=true and CKA_EXTRACTABLE=false read through PKCS#11; CKA_VALUE unreadable."""
    version = hsm_keystore.current_version(purpose)

    def attributes(session):  # type: ignore[no-untyped-def]
        key = k.find_key(session, purpose, version)
        values = (key[Attribute.SENSITIVE], key[Attribute.EXTRACTABLE],
                  key[Attribute.NEVER_EXTRACTABLE], key[Attribute.PRIVATE])
        with pytest.raises(p11.AttributeSensitive):
            key[Attribute.VALUE]
        return values

    assert hsm_keystore.owner.run(attributes, where="test") == (True, False, True, True)


def test_key_uses_are_restricted(hsm_keystore: KeyStore) -> None:
    """The HMAC key only signs, the vault key only encrypts/decrypts (no wrap, no sign)."""
    def uses(session):  # type: ignore[no-untyped-def]
        tok = k.find_key(session, KeyPurpose.TOKENISATION,
                         hsm_keystore.tokenisation_key_version)
        vault = k.find_key(session, KeyPurpose.VAULT, hsm_keystore.vault_key_version)
        return ([tok[a] for a in (Attribute.SIGN, Attribute.ENCRYPT, Attribute.WRAP)],
                [vault[a] for a in (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.SIGN,
                                    Attribute.WRAP)])

    assert hsm_keystore.owner.run(uses, where="test") == ([True, False, False],
                                                         [True, True, False, False])


def test_signatures_verify_with_cryptography(hsm_keystore: KeyStore) -> None:
    """sign() gives DER ECDSA P-256/SHA-256 that cryptography verifies with the exported PEM."""
    data = b'{"batch": 7, "entries": ["..."]}'
    signature = hsm_keystore.sign(data)
    public = serialization.load_pem_public_key(hsm_keystore.public_key_pem())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    verify_signature(hsm_keystore.public_key_pem(), data, signature)
    with pytest.raises(SignatureInvalidError):
        verify_signature(hsm_keystore.public_key_pem(), data + b" ", signature)


def test_rotation_keeps_old_blobs_and_signatures_usable(hsm_keystore: KeyStore) -> None:
    """After rotating every key: new work uses the new versions, old blobs still open, old
    signatures still verify under the old public key, and records carry their versions."""
    store = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    before = store.tokenise(PAN, EXPIRY)
    old_sig, old_version = store.sign(b"checkpoint"), store.signing_key_version
    versions = {p: store.rotate(p) for p in KeyPurpose}
    after = store.tokenise(PAN, EXPIRY)
    assert after.key_version == versions[KeyPurpose.TOKENISATION] == before.key_version + 1
    assert after.vault_key_version == versions[KeyPurpose.VAULT] > before.vault_key_version
    assert after.fingerprint != before.fingerprint
    assert int.from_bytes(after.vault_blob[1:3], "big") == after.vault_key_version
    assert store.detokenise(before.token, before.vault_blob) == CardData(PAN, EXPIRY)
    assert store.detokenise(after.token, after.vault_blob) == CardData(PAN, EXPIRY)
    assert store.signing_key_version == old_version + 1
    verify_signature(store.public_key_pem(old_version), b"checkpoint", old_sig)
    verify_signature(store.public_key_pem(), b"new", store.sign(b"new"))
    assert store.fingerprint(PAN, before.key_version) == before.fingerprint
    hsm_keystore.refresh()
    assert hsm_keystore.key_versions() == store.key_versions()


def test_signer_bound_to_an_older_version_signs_with_it(hsm_keystore: KeyStore) -> None:
    """After a rotation, for_version(old) signs under the old key (rotation announcements);
    a version the token does not hold is refused."""
    store = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    old_version = store.signing_key_version
    new_version = store.rotate(KeyPurpose.SIGNING)
    current, previous = store.signer(), store.signer().for_version(old_version)
    assert (current.key_version, previous.key_version) == (new_version, old_version)
    verify_signature(store.public_key_pem(old_version), b"announce", previous.sign(b"announce"))
    assert previous.public_key_pem() == store.public_key_pem(old_version)
    with pytest.raises(SignatureInvalidError):
        verify_signature(store.public_key_pem(new_version), b"announce", previous.sign(b"announce"))
    with pytest.raises(ValueError, match="no signing key version 999"):
        store.signer().for_version(999)
    hsm_keystore.refresh()


def test_eight_threads_agree_with_one(hsm_keystore: KeyStore) -> None:
    """8 threads × 1,000 tokenisations (token, fingerprint, version and a vault blob each)
    give exactly what one thread gives, every blob opens, and nothing crashes."""
    rng = random.Random(7)
    pans = [with_check_digit(str(rng.randrange(10**14, 10**15))) for _ in range(1000)]
    single = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())

    def summary(card: TokenisedCard) -> tuple[str, str, int, int]:
        return card.token, card.fingerprint, card.key_version, card.vault_key_version

    expected = {pan: summary(single.tokenise(pan, EXPIRY)) for pan in pans}
    shared = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    results: list[dict[str, tuple[str, str, int, int]]] = [{} for _ in range(8)]
    blobs: list[tuple[str, str, bytes]] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        order = pans[:]
        random.Random(n).shuffle(order)
        start.wait()
        for i, pan in enumerate(order):
            card = shared.tokenise(pan, EXPIRY)
            results[n][pan] = summary(card)
            if i % 100 == n:
                blobs.append((pan, card.token, card.vault_blob))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert result == expected
    assert len(blobs) == 80
    for pan, token, blob in blobs:
        assert shared.detokenise(token, blob).pan == pan


async def test_async_facade(hsm_keystore: KeyStore) -> None:
    """AsyncKeyStore runs on the hsm-worker thread; concurrent awaits give correct results."""
    store = AsyncKeyStore(KeyStore(hsm_keystore.owner, InMemoryTokenRegistry()))
    cards = await asyncio.gather(*(store.tokenise(PAN, EXPIRY) for _ in range(20)))
    assert len({c.token for c in cards}) == 1
    assert await store.detokenise(cards[0].token, cards[0].vault_blob) == CardData(PAN, EXPIRY)
    signature = await store.sign(b"pop-record")
    verify_signature(await store.public_key_pem(), b"pop-record", signature)
    assert store.signing_key_version == hsm_keystore.signing_key_version


def test_status_lists_every_key_without_material(hsm_keystore: KeyStore) -> None:
    """status() lists token and keys with versions, attributes and 6-hex-digit KCVs."""
    status = hsm_keystore.status()
    assert status.token_label == "etika-terminal"
    purposes = {info.purpose for info in status.keys}
    assert purposes == {"tokenisation", "vault", "signing"}
    for info in status.keys:
        assert len(info.kcv) == 6 and int(info.kcv, 16) >= 0
        assert info.attributes["sensitive"] and not info.attributes["extractable"]
    current = [i for i in status.keys if i.current]
    assert sorted(i.purpose for i in current) == ["signing", "tokenisation", "vault"]


def test_tokenise_without_registry_is_a_caller_mistake(hsm_keystore: KeyStore) -> None:
    """A key store opened without a TokenRegistry refuses to tokenise with a TypeError."""
    with pytest.raises(TypeError, match="TokenRegistry"):
        KeyStore(hsm_keystore.owner).tokenise_pan(PAN)


def test_pan_is_not_a_key_label_or_object(hsm_keystore: KeyStore) -> None:
    """Tokenising leaves no new object in the token (the HMAC and GCM are stateless)."""
    def count(session):  # type: ignore[no-untyped-def]
        return sum(1 for _ in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))

    before = hsm_keystore.owner.run(count, where="test")
    KeyStore(hsm_keystore.owner, InMemoryTokenRegistry()).tokenise(PAN, EXPIRY)
    assert hsm_keystore.owner.run(count, where="test") == before


def test_token_signer_satisfies_both_signer_protocols(hsm_keystore: KeyStore) -> None:
    """KeyStore.signer() is an hsm.base.Signer and an edge_sync.signing.Signer; its
    signatures verify with edge_sync's own verify helper."""
    from edge_sync.signing import Signer as SyncSigner
    from edge_sync.signing import verify_signature as sync_verify
    from hsm.base import Signer

    signer = hsm_keystore.signer()
    assert isinstance(signer, Signer) and isinstance(signer, SyncSigner)
    assert signer.key_version == hsm_keystore.signing_key_version
    sync_verify(signer.public_key_pem(), b"uplink", signer.sign(b"uplink"))


def test_rotation_from_a_stale_store_takes_the_next_free_version(hsm_keystore: KeyStore) -> None:
    """A store whose cached versions are stale (another process rotated) still creates the
    next free version, never a second key with an existing label."""
    first = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    stale = KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())
    v1 = first.rotate(KeyPurpose.SIGNING)
    v2 = stale.rotate(KeyPurpose.SIGNING)
    assert v2 == v1 + 1 and stale.signing_key_version == v2
    verify_signature(stale.public_key_pem(), b"x", stale.sign(b"x"))
