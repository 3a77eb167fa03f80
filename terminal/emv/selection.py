"""Application selection (EMV 4.4 Book 1 §12; EMV Contactless Book B §3.3 for the PPSE).

Building the candidate list:

1. *Directory*: SELECT ``1PAY.SYS.DDF01`` (contact) or ``2PAY.SYS.DDF01`` (contactless).
   Contact: the FCI names the directory SFI (88); READ RECORD 1, 2, … until ``6A83``; each
   record's ``61`` entries give ADF name (4F), label (50), preferred name (9F12) and
   priority (87). Contactless: the ``61`` entries are inside BF0C of the FCI itself.
   SELECT answering ``6A81`` means the card is blocked: selection ends (Book 1 §12.3.2).
   An entry naming a DDF (9D) is followed where it stands: SELECT the DDF, read its
   directory the same way, SELECT the parent again and go on with its next entry
   (Book 1 §12.3.2; loops and more than four levels are not followed).
2. *List of AIDs* (Book 1 §12.3.3), contact only, when the PSE is absent or yields nothing:
   SELECT each terminal AID; a DF name equal to it is a candidate; a longer one that starts
   with it is a candidate if the terminal AID allows partial matching, and SELECT *next
   occurrence* looks for more; ``6283`` (application blocked) drops that one; ``6A82``
   moves to the next terminal AID; ``6A81`` (card blocked or SELECT not supported) ends the
   session with ``CardBlockedError``.
3. Candidates are ordered by priority indicator (87 b4–b1, 1 highest, 0 = none, last),
   then in the order found (Book 1 §12.4). Priority bit b8 means the application needs
   cardholder confirmation: a terminal without it (``cardholder_confirmation=False``)
   leaves such applications out.

Final selection SELECTs the chosen ADF; a non-``9000`` answer, or an FCI without its DF
Name (84, mandatory: Book 1 §11.3.4), removes it from the list and the choice is made again
(Book 1 §12.4, last paragraph).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from terminal.aid_match import match_aid
from terminal.emv import apdu
from terminal.emv.apdu import CardChannel
from terminal.emv.config import AidConfig, KernelConfig
from terminal.emv.errors import (
    ApplicationBlockedError,
    CardBlockedError,
    CardDataError,
    CardError,
    NoApplicationError,
    TlvError,
    TransactionNotAllowedError,
)
from terminal.emv.tlv import Tlv, decode, find, find_all, flatten

__all__ = [
    "PPSE",
    "PSE",
    "Candidate",
    "Chooser",
    "SelectedApplication",
    "build_candidates",
    "choose_first",
    "select_application",
]

PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"
_MAX_RECORDS = 32
#: DDFs followed below the PSE: real cards use one level; the bound stops a hostile card.
_MAX_DDF_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    """One application both the card and the terminal support."""

    aid: bytes
    config: AidConfig
    label: str = ""
    preferred_name: str = ""
    priority: int = 0
    needs_confirmation: bool = False
    order: int = 0

    @property
    def display_name(self) -> str:
        return self.preferred_name or self.label or self.config.label or self.aid.hex().upper()

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.priority if self.priority else 16, self.order)


@dataclass(slots=True)
class SelectedApplication:
    """The application after final selection, with its FCI."""

    candidate: Candidate
    fci: list[Tlv]
    data: dict[int, bytes] = field(default_factory=dict)

    @property
    def aid(self) -> bytes:
        return self.candidate.aid

    @property
    def pdol(self) -> bytes | None:
        return self.data.get(0x9F38)


Chooser = Callable[[Sequence[Candidate]], Awaitable[Candidate]]


async def choose_first(candidates: Sequence[Candidate]) -> Candidate:
    """The default chooser: the highest priority application (Book 1 §12.4 without a display)."""
    return candidates[0]


def _text(data: dict[int, bytes], tag: int) -> str:
    raw = data.get(tag, b"")
    return raw.decode("ascii", errors="replace").strip()


def _match(card_aid: bytes, aids: Sequence[AidConfig]) -> AidConfig | None:
    """The terminal AID the card AID matches: exact, or as a prefix if partial allowed."""
    # The rule routing shares (Profile.network_for_aid), so both pick the same application.
    return match_aid(card_aid, aids, aid=lambda cfg: cfg.aid, partial=lambda cfg: cfg.partial_match)


def _candidate_from_entry(entry: Tlv, aids: Sequence[AidConfig], order: int) -> Candidate | None:
    data = flatten(entry.children)
    card_aid = data.get(0x4F)
    if card_aid is None or not 5 <= len(card_aid) <= 16:
        return None
    cfg = _match(card_aid, aids)
    if cfg is None:
        return None
    api = data.get(0x87, b"\x00")[:1] or b"\x00"
    return Candidate(
        aid=card_aid,
        config=cfg,
        label=_text(data, 0x50),
        preferred_name=_text(data, 0x9F12),
        priority=api[0] & 0x0F,
        needs_confirmation=bool(api[0] & 0x80),
        order=order,
    )


async def _directory_contact(channel: CardChannel, aids: Sequence[AidConfig]) -> list[Candidate]:
    response = await channel.transmit(apdu.select(PSE))
    if response.sw == 0x6A81:
        raise CardBlockedError("the card is blocked (SELECT PSE refused)", sw=response.sw)
    if not response.ok:
        return []
    found: list[Candidate] = []
    if not await _read_directory(channel, [PSE], response.data, aids, found):
        # A malformed directory: Book 1 §12.3.2 says to fall back to the list of AIDs.
        return []
    return found


async def _read_directory(
    channel: CardChannel,
    path: list[bytes],
    fci_data: bytes,
    aids: Sequence[AidConfig],
    found: list[Candidate],
) -> bool:
    """Read the directory of the DDF at the end of ``path`` (PSE first), following DDFs.

    Book 1 §12.3.2: each ``61`` entry names an ADF (4F) — a candidate if the terminal
    supports it — or a DDF (9D), whose own directory is read when the entry is met, after
    which the previous directory resumes at its next entry. READ RECORD addresses the
    currently selected DF, so the parent is selected again before it resumes. A DDF already
    on the path (a loop) or beyond :data:`_MAX_DDF_DEPTH` is skipped. False when the
    directory is malformed (the caller falls back to the list of AIDs).
    """
    try:
        fci = decode(fci_data)
    except TlvError:
        return False
    sfi_tlv = find(fci, 0x88)
    if sfi_tlv is None or len(sfi_tlv.value) != 1 or not 1 <= sfi_tlv.value[0] <= 10:
        return len(path) > 1  # a DDF without a usable directory adds nothing
    sfi = sfi_tlv.value[0]
    for number in range(1, _MAX_RECORDS + 1):
        record = await channel.transmit(apdu.read_record(sfi, number))
        if record.sw == 0x6A83 or not record.ok:
            break
        try:
            items = decode(record.data)
        except TlvError:
            return False
        for entry in find_all(items, 0x61):
            ddf = flatten(entry.children).get(0x9D)
            if ddf is None:
                candidate = _candidate_from_entry(entry, aids, len(found))
                if candidate is not None:
                    found.append(candidate)
                continue
            if ddf in path or len(path) > _MAX_DDF_DEPTH or not 5 <= len(ddf) <= 16:
                continue
            selected = await channel.transmit(apdu.select(ddf))
            if selected.ok and not await _read_directory(
                channel, [*path, ddf], selected.data, aids, found
            ):
                return False
            # Back to this directory so that its next records are ours, not the DDF's.
            again = await channel.transmit(apdu.select(path[-1]))
            if not again.ok:
                return True  # keep what was found; the rest of this directory is unreachable
    return True


async def _directory_contactless(
    channel: CardChannel, aids: Sequence[AidConfig]
) -> list[Candidate]:
    response = await channel.transmit(apdu.select(PPSE))
    if response.sw == 0x6A81:
        raise CardBlockedError("the card is blocked (SELECT PPSE refused)", sw=response.sw)
    if not response.ok:
        raise NoApplicationError(
            f"the card has no contactless directory (SW {response.sw:04X}); insert the card",
            sw=response.sw,
        )
    try:
        fci = decode(response.data)
    except TlvError as exc:
        raise CardDataError(f"the PPSE answer is malformed: {exc.message}") from exc
    found: list[Candidate] = []
    for entry in find_all(fci, 0x61):
        candidate = _candidate_from_entry(entry, aids, len(found))
        if candidate is not None:
            found.append(candidate)
    return found


async def _list_of_aids(
    channel: CardChannel, aids: Sequence[AidConfig], blocked: list[bytes]
) -> list[Candidate]:
    found: list[Candidate] = []
    for cfg in aids:
        next_occurrence = False
        for _ in range(_MAX_RECORDS):
            response = await channel.transmit(apdu.select(cfg.aid, next_occurrence=next_occurrence))
            if response.sw == 0x6A81:
                # Book 1 §12.3.3: card blocked or command not supported: the session ends.
                raise CardBlockedError("the card is blocked (SELECT refused with 6A81)",
                                  sw=response.sw, command="SELECT")
            if response.sw not in (0x9000, 0x6283):
                break  # 6A82 and any other error: next terminal AID
            try:
                fci = decode(response.data)
            except TlvError:
                break
            data = flatten(fci)
            df_name = data.get(0x84, b"")
            if response.sw == 0x9000 and df_name == cfg.aid:
                found.append(_fci_candidate(df_name, cfg, data, len(found)))
                break
            if response.sw == 0x9000 and cfg.partial_match and df_name.startswith(cfg.aid):
                found.append(_fci_candidate(df_name, cfg, data, len(found)))
            if response.sw == 0x6283:
                blocked.append(df_name or cfg.aid)
            if not df_name.startswith(cfg.aid) or not cfg.partial_match:
                break
            next_occurrence = True
    return found


def _fci_candidate(df_name: bytes, cfg: AidConfig, data: dict[int, bytes], order: int) -> Candidate:
    api = data.get(0x87, b"\x00")[:1] or b"\x00"
    return Candidate(
        aid=df_name,
        config=cfg,
        label=_text(data, 0x50),
        preferred_name=_text(data, 0x9F12),
        priority=api[0] & 0x0F,
        needs_confirmation=bool(api[0] & 0x80),
        order=order,
    )


async def build_candidates(
    channel: CardChannel, config: KernelConfig, *, contactless: bool = False
) -> list[Candidate]:
    """The candidate list, highest priority first (Book 1 §12.3)."""
    if contactless:
        aids = [cfg for cfg in config.aids if cfg.contactless]
        found = await _directory_contactless(channel, aids)
    else:
        aids = list(config.aids)
        found = await _directory_contact(channel, aids)
        if not found:
            blocked: list[bytes] = []
            found = await _list_of_aids(channel, aids, blocked)
            if not found and blocked:
                raise ApplicationBlockedError(
                    f"the card's application {blocked[0].hex().upper()} is blocked",
                    sw=0x6283,
                    command="SELECT",
                )
    unique: dict[bytes, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.aid, candidate)
    return sorted(unique.values(), key=lambda c: c.sort_key)


async def select_application(
    channel: CardChannel,
    config: KernelConfig,
    *,
    contactless: bool = False,
    chooser: Chooser = choose_first,
    exclude: frozenset[bytes] = frozenset(),
) -> SelectedApplication:
    """Build the candidate list, let ``chooser`` pick, and SELECT it (Book 1 §12.4).

    ``exclude`` removes applications already refused during this transaction (GPO ``6985``,
    Book 3 §10.1: back to selection without them).
    """
    candidates = await build_candidates(channel, config, contactless=contactless)
    if not config.cardholder_confirmation:
        # Book 1 §12.4: without a way to confirm, applications that require cardholder
        # confirmation (87 b8) are not selectable.
        candidates = [c for c in candidates if not c.needs_confirmation]
    if exclude:
        candidates = [c for c in candidates if c.aid not in exclude]
        if not candidates:
            raise TransactionNotAllowedError(
                "the card refuses this transaction with every application it offers"
            )
    last_error: CardError | CardDataError | None = None
    while candidates:
        chosen = await chooser(candidates)
        if chosen not in candidates:
            raise ValueError("the chooser must return one of the candidates it was given")
        response = await channel.transmit(apdu.select(chosen.aid))
        fci: list[Tlv] = []
        if response.ok:
            try:
                fci = decode(response.data)
            except TlvError as exc:
                raise CardDataError(f"the FCI of the application is malformed: {exc.message}",
                                    offset=exc.offset) from exc
            data = flatten(fci)
            if 0x84 not in data:
                # Book 1 §11.3.4, §12.4: the DF Name is mandatory in the FCI; without it
                # the answer is a format error: remove the application, choose again.
                last_error = CardDataError("the card's answer to SELECT lacks the DF name (84)",
                                           tag=0x84)
            elif data[0x84] != chosen.aid:
                last_error = CardError("the card answered SELECT with another DF name",
                                       sw=response.sw, command="SELECT")
            else:
                return SelectedApplication(candidate=chosen, fci=fci, data=data)
        elif response.sw == 0x6283:
            last_error = ApplicationBlockedError(
                f"the application {chosen.display_name} is blocked", sw=response.sw,
                command="SELECT",
            )
        else:
            last_error = CardError(f"the card refused to select {chosen.display_name}",
                                   sw=response.sw, command="SELECT")
        candidates = [c for c in candidates if c is not chosen]
    if last_error is not None:
        raise last_error
    raise NoApplicationError("the card has no application this terminal accepts")
