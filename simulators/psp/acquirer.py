"""The acquirer and issuer behind every simulated PSP: card checks, balances, ledger.

Both the ISO 8583 host and the REST gateways call one :class:`Acquirer`, so a card behaves
the same whichever way it is reached. For an authorisation it, in order:

1. opens the P2PE envelope with the PSP's private key (``hsm.p2pe.decrypt_card``), the
   transaction UUID as context — the only place the simulator sees the PAN;
2. finds the account (unknown → ``14``), refuses lost (``41``) and stolen (``43``) cards
   and expired ones (``54``, from the envelope's YYMM);
3. verifies the ARQC of the ICC data with the card simulator's issuer master keys
   (:mod:`simulators.card.issuer`: Option A card keys, common session key, Book 2 §8.1)
   — mismatch or missing data → ``05``;
4. verifies an online PIN block with the BDK (:func:`simulators.pinpad.host.verify_pin`,
   TDES or AES DUKPT by KSN length): wrong → ``55``, the last try → ``75``, an unreadable
   block → ``81``;
5. applies the per-transaction limit and daily limit (``61``) and the balance (``51``);
6. approves with an approval code, and returns the ARPC (tag 91: method 1 ARPC ‖ ARC, or
   method 2 ARPC ‖ CSU, as the card expects) for any verified ARQC, approved or not.

Every operation is keyed by its idempotency key (the transaction UUID): asking again gives
the stored decision back, marked ``replayed``, and never moves money twice. Balances are
single numbers of minor units whatever the currency: it is a simulator.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hsm.cards import CardData, luhn_valid, mask_pan
from hsm.errors import EnvelopeInvalidError
from hsm.p2pe import decrypt_card
from simulators.card import issuer
from simulators.card.profiles import PROFILES, ArpcMode
from simulators.pinpad.device import DEFAULT_AES_BDK, DEFAULT_TDES_BDK
from simulators.pinpad.errors import IncorrectPinError, PinBlockUnreadableError
from simulators.pinpad.host import verify_pin

__all__ = [
    "LIMITED_PAN",
    "LOST_PAN",
    "LOW_BALANCE_PAN",
    "STOLEN_PAN",
    "Account",
    "Acquirer",
    "Decision",
    "EntryKind",
    "default_accounts",
    "with_luhn",
]


def with_luhn(body: str) -> str:
    """``body`` with the ISO/IEC 7812 check digit appended."""
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise ValueError("no Luhn digit")  # pragma: no cover - one always exists


#: Test cards that exist only at the issuer (no card simulator profile).
LOW_BALANCE_PAN = with_luhn("476173900109006")
LOST_PAN = with_luhn("476173900109007")
STOLEN_PAN = with_luhn("476173900109008")
LIMITED_PAN = with_luhn("476173900109009")

DEFAULT_BALANCE = 10_000_000
DEFAULT_TXN_LIMIT = 5_000_000
DEFAULT_DAILY_LIMIT = 8_000_000
PIN_TRIES = 3


@dataclass
class Account:
    """One card at the issuer; ``balance`` and limits in minor units."""

    pan: str = field(repr=False)
    issuer: str = "visa"
    psn: int = 1
    pin: str = field(default="1234", repr=False)
    arpc_method: int = 1
    balance: int = DEFAULT_BALANCE
    transaction_limit: int = DEFAULT_TXN_LIMIT
    daily_limit: int = DEFAULT_DAILY_LIMIT
    status: str = "active"  # active | lost | stolen
    pin_tries_left: int = PIN_TRIES
    spent_today: int = 0

    @property
    def masked(self) -> str:
        return mask_pan(self.pan)


def default_accounts() -> list[Account]:
    """Every application of the card simulator's profiles, plus the issuer-only test cards."""
    accounts: dict[str, Account] = {}
    for profile in PROFILES.values():
        for app in profile.apps:
            accounts[app.pan] = Account(
                pan=app.pan, issuer=app.issuer, psn=app.psn, pin=app.pin,
                arpc_method=2 if app.arpc is ArpcMode.METHOD2_GENAC2 else 1,
            )
    accounts[LOW_BALANCE_PAN] = Account(pan=LOW_BALANCE_PAN, balance=1_000)
    accounts[LOST_PAN] = Account(pan=LOST_PAN, status="lost")
    accounts[STOLEN_PAN] = Account(pan=STOLEN_PAN, status="stolen")
    accounts[LIMITED_PAN] = Account(pan=LIMITED_PAN, transaction_limit=10_000,
                                    daily_limit=15_000)
    return list(accounts.values())


class EntryKind(StrEnum):
    SALE = "sale"  # authorise and capture
    AUTH = "auth"  # authorise only (hold)
    ADVICE = "advice"  # an offline approval the card made: booked, never refused for funds
    REFUND = "refund"


@dataclass(frozen=True)
class Decision:
    """The issuer's answer: ISO 8583 DE 39 ``code``, a short ``reason`` (DE 44)."""

    code: str
    reason: str
    approval_code: str | None = None
    issuer_auth_data: bytes = b""
    replayed: bool = False

    @property
    def approved(self) -> bool:
        return self.code == "00"


@dataclass
class LedgerEntry:
    key: str
    kind: EntryKind
    amount: int
    currency: str
    decision: Decision
    account: Account | None = field(default=None, repr=False)
    state: str = "declined"  # declined | held | captured | reversed | refunded
    captured: int = 0
    refunded: int = 0
    original_key: str | None = None
    follow_ups: dict[str, Decision] = field(default_factory=dict)


def _decline(code: str, reason: str, iad: bytes = b"") -> Decision:
    return Decision(code=code, reason=reason[:25], issuer_auth_data=iad)


class Acquirer:
    """Issuer rules and a ledger; thread-safe (uvicorn may call it from several threads)."""

    def __init__(
        self,
        p2pe_private_key: bytes,
        accounts: Iterable[Account] | None = None,
        *,
        bdks: Mapping[int, bytes] | None = None,
        require_arqc: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # Loaded once: parsing a PEM private key validates it, which costs far more than
        # the decryption itself.
        loaded = serialization.load_pem_private_key(p2pe_private_key, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the P2PE private key must be RSA or EC P-256")
        self._key = loaded
        self.accounts = {a.pan: a for a in (accounts or default_accounts())}
        self._bdks = dict(bdks or {10: DEFAULT_TDES_BDK, 12: DEFAULT_AES_BDK})
        self.require_arqc = require_arqc
        self._clock = clock
        self.ledger: dict[str, LedgerEntry] = {}
        self._approvals = itertools.count(1)
        self._lock = threading.RLock()
        #: How many times money actually moved (tests: "charged once").
        self.postings = 0

    # --- lookups --------------------------------------------------------------------------

    def account(self, pan: str) -> Account:
        return self.accounts[pan]

    def entry(self, key: str) -> LedgerEntry | None:
        with self._lock:
            return self.ledger.get(key)

    def snapshot(self) -> tuple[list[LedgerEntry], int]:
        """Every ledger entry and the posting count, taken under the lock."""
        with self._lock:
            return list(self.ledger.values()), self.postings

    def open_card(self, envelope: bytes, context: bytes) -> CardData:
        """The card data of a P2PE envelope; ``EnvelopeInvalidError`` if it does not open."""
        return decrypt_card(self._key, envelope, context)

    # --- authorisation -------------------------------------------------------------------

    def authorise(
        self,
        key: str,
        envelope: bytes,
        amount: int,
        currency: str,
        *,
        kind: EntryKind = EntryKind.SALE,
        icc: Mapping[int, bytes] | None = None,
        psn: int | None = None,
        pin_block: bytes | None = None,
        ksn: bytes | None = None,
        forced_code: str | None = None,
    ) -> Decision:
        with self._lock:
            existing = self.ledger.get(key)
            if existing is not None:
                return replace(existing.decision, replayed=True)
            entry = self._decide(key, envelope, amount, currency, kind, icc or {}, psn,
                                 pin_block, ksn, forced_code)
            self.ledger[key] = entry
            return entry.decision

    def _decide(self, key: str, envelope: bytes, amount: int, currency: str, kind: EntryKind,
                icc: Mapping[int, bytes], psn: int | None, pin_block: bytes | None,
                ksn: bytes | None, forced_code: str | None) -> LedgerEntry:
        entry = LedgerEntry(key=key, kind=kind, amount=amount, currency=currency,
                            decision=_decline("05", "DO NOT HONOUR"))
        try:
            card = self.open_card(envelope, key.encode())
        except (EnvelopeInvalidError, ValueError):
            entry.decision = _decline("05", "P2PE ENVELOPE INVALID")
            return entry
        account = self.accounts.get(card.pan)
        if account is None:
            entry.decision = _decline("14", "INVALID CARD NUMBER")
            return entry
        entry.account = account
        if account.status == "lost":
            entry.decision = _decline("41", "LOST CARD")
            return entry
        if account.status == "stolen":
            entry.decision = _decline("43", "STOLEN CARD")
            return entry
        today = self._clock()
        if (int(card.expiry[:2]), int(card.expiry[2:])) < (today.year % 100, today.month):
            entry.decision = _decline("54", "EXPIRED CARD")
            return entry
        card_psn = psn if psn is not None else _psn_of(icc, account.psn)
        arqc = icc.get(0x9F26)
        if arqc is None:
            if self.require_arqc and kind is not EntryKind.ADVICE:
                entry.decision = _decline("05", "NO CRYPTOGRAM")
                return entry
        else:
            try:
                issuer.verify_arqc(issuer.issuer_master_keys(account.issuer), card.pan,
                                   card_psn, icc, arqc)
            except (issuer.CryptogramMismatchError, ValueError, KeyError):
                if kind is not EntryKind.ADVICE:  # an offline TC is booked all the same
                    entry.decision = _decline("05", "ARQC FAILED")
                    return entry
                arqc = None
        code, reason = self._rules(account, card, amount, kind, pin_block, ksn, forced_code)
        iad = b""
        if arqc is not None and kind is not EntryKind.ADVICE:
            iad = self._arpc(account, card.pan, card_psn, icc, arqc, code)
        if code != "00":
            entry.decision = _decline(code, reason, iad)
            return entry
        account.balance -= amount
        account.spent_today += amount
        self.postings += 1
        entry.state = "held" if kind is EntryKind.AUTH else "captured"
        entry.captured = 0 if kind is EntryKind.AUTH else amount
        entry.decision = Decision(code="00", reason="APPROVED",
                                  approval_code=f"{next(self._approvals):06d}",
                                  issuer_auth_data=iad)
        return entry

    def _rules(self, account: Account, card: CardData, amount: int, kind: EntryKind,
               pin_block: bytes | None, ksn: bytes | None, forced: str | None
               ) -> tuple[str, str]:
        if forced is not None:
            return forced, "DECLINED (FAULT)"
        if pin_block is not None and ksn is not None:
            if account.pin_tries_left <= 0:
                return "75", "PIN TRIES EXCEEDED"
            bdk = self._bdks.get(len(ksn))
            if bdk is None:
                return "81", "UNKNOWN KSN FORMAT"
            try:
                verify_pin(bdk, ksn, pin_block, card.pan, account.pin)
            except IncorrectPinError:
                account.pin_tries_left -= 1
                if account.pin_tries_left <= 0:
                    return "75", "PIN TRIES EXCEEDED"
                return "55", "INCORRECT PIN"
            except (PinBlockUnreadableError, ValueError):
                return "81", "PIN BLOCK UNREADABLE"
            account.pin_tries_left = PIN_TRIES
        if kind is EntryKind.ADVICE:
            return "00", "APPROVED"  # the card approved offline: book it, even overdrawn
        if amount > account.transaction_limit:
            return "61", "OVER TRANSACTION LIMIT"
        if account.spent_today + amount > account.daily_limit:
            return "61", "OVER DAILY LIMIT"
        if amount > account.balance:
            return "51", "INSUFFICIENT FUNDS"
        return "00", "APPROVED"

    def _arpc(self, account: Account, pan: str, psn: int, icc: Mapping[int, bytes],
              arqc: bytes, code: str) -> bytes:
        imk = issuer.issuer_master_keys(account.issuer)
        atc = icc[0x9F36]
        if account.arpc_method == 2:
            csu = bytes.fromhex("00800000" if code == "00" else "00000000")
            return issuer.arpc_method_2(imk, pan, psn, atc, arqc, csu)
        return issuer.arpc_method_1(imk, pan, psn, atc, arqc, code.encode("ascii"))

    # --- follow-ups ----------------------------------------------------------------------

    def _follow_up(self, key: str, operation: str) -> tuple[LedgerEntry | None, Decision | None]:
        entry = self.ledger.get(key)
        if entry is None:
            return None, None
        done = entry.follow_ups.get(operation)
        return entry, replace(done, replayed=True) if done else None

    def reverse(self, key: str) -> Decision:
        """Undo an authorisation in full; ``25`` when it was never seen."""
        with self._lock:
            entry, done = self._follow_up(key, "reverse")
            if done is not None:
                return done
            if entry is None:
                # Remember the reversal so a late original is refused (no charge after undo).
                tomb = LedgerEntry(key=key, kind=EntryKind.SALE, amount=0, currency="",
                                   decision=_decline("05", "REVERSED BEFORE ARRIVAL"),
                                   state="reversed")
                decision = _decline("25", "ORIGINAL NOT FOUND")
                tomb.follow_ups["reverse"] = decision
                self.ledger[key] = tomb
                return decision
            if entry.state in ("held", "captured") and entry.account is not None:
                held = entry.amount if entry.state == "held" else entry.captured
                entry.account.balance += held - entry.refunded
                entry.account.spent_today -= held
                self.postings += 1
            entry.state = "reversed" if entry.decision.approved else entry.state
            decision = Decision(code="00", reason="REVERSED")
            entry.follow_ups["reverse"] = decision
            return decision

    def complete(self, key: str, amount: int) -> Decision:
        """Capture a held authorisation for ``amount`` (not more than authorised)."""
        with self._lock:
            entry, done = self._follow_up(key, "complete")
            if done is not None:
                return done
            if entry is None:
                return _decline("25", "ORIGINAL NOT FOUND")
            if entry.state != "held" or entry.account is None:
                return _decline("12", f"CANNOT CAPTURE {entry.state.upper()}")
            if amount > entry.amount:
                return _decline("13", "CAPTURE OVER AUTHORISED")
            entry.account.balance += entry.amount - amount
            entry.account.spent_today -= entry.amount - amount
            entry.captured = amount
            entry.state = "captured"
            self.postings += 1
            decision = Decision(code="00", reason="CAPTURED",
                                approval_code=entry.decision.approval_code)
            entry.follow_ups["complete"] = decision
            return decision

    def refund(self, original_key: str, refund_key: str, amount: int) -> Decision:
        """Give back up to what was captured, as its own transaction ``refund_key``."""
        with self._lock:
            existing = self.ledger.get(refund_key)
            if existing is not None:
                return replace(existing.decision, replayed=True)
            original = self.ledger.get(original_key)
            entry = LedgerEntry(key=refund_key, kind=EntryKind.REFUND, amount=amount,
                                currency=original.currency if original else "",
                                decision=_decline("25", "ORIGINAL NOT FOUND"),
                                original_key=original_key)
            if original is not None:
                if original.state != "captured" or original.account is None:
                    entry.decision = _decline("12", "NOTHING CAPTURED")
                elif original.refunded + amount > original.captured:
                    entry.decision = _decline("13", "REFUND OVER CAPTURED")
                else:
                    original.refunded += amount
                    original.account.balance += amount
                    self.postings += 1
                    if original.refunded == original.captured:
                        original.state = "refunded"
                    entry.state = "captured"
                    entry.account = original.account
                    entry.decision = Decision(code="00", reason="REFUNDED",
                                              approval_code=f"{next(self._approvals):06d}")
            self.ledger[refund_key] = entry
            return entry.decision

    def status(self, key: str) -> Decision:
        """The decision taken for ``key``, or ``25`` when unknown."""
        with self._lock:
            entry = self.ledger.get(key)
            if entry is None:
                return _decline("25", "ORIGINAL NOT FOUND")
            if entry.state == "reversed":
                return Decision(code="00", reason="REVERSED",
                                approval_code=entry.decision.approval_code)
            return entry.decision


def _psn_of(icc: Mapping[int, bytes], default: int) -> int:
    value = icc.get(0x5F34)
    if not value:
        return default
    return int(value.hex())  # n2 BCD (EMV Book 3 Annex A)
