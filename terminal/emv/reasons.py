"""Why a transaction ended as it did, in words a cashier can read (issue #16 item 4).

Derived only from what the result already holds: the decision, the TVR bits (EMV 4.4
Book 3 Annex C5), the cryptograms and the Authorisation Response Code (ISO 8583 response
codes; ``Y1``/``Z1``/``Y3``/``Z3`` are the terminal's own, Book 4 §6.3.6). Examples:
"random selection for online, no host reachable", "consecutive offline limit reached on
the card", "wrong PIN (issuer code 55)", "card declined (AAC)".
"""

from __future__ import annotations

from edge_sync.response_codes import ISO_APPROVED
from terminal.emv.tvr import Tvr, TvrBit

__all__ = ["ISSUER_CODES", "describe_outcome", "tvr_causes"]

#: TVR bits that explain an outcome, most telling first, with their words. LCOL and UCOL
#: share one phrase (the cashier needs one: the card wants to go online).
_CAUSES: tuple[tuple[TvrBit, str], ...] = (
    (TvrBit.CARD_ON_EXCEPTION_FILE, "card on the terminal's exception file"),
    (TvrBit.CDA_FAILED, "card signature check (CDA) failed"),
    (TvrBit.DDA_FAILED, "card authentication (DDA) failed"),
    (TvrBit.SDA_FAILED, "card data authentication (SDA) failed"),
    (TvrBit.ICC_DATA_MISSING, "card data missing"),
    (TvrBit.EXPIRED_APPLICATION, "card expired"),
    (TvrBit.APPLICATION_NOT_YET_EFFECTIVE, "card not yet valid"),
    (TvrBit.SERVICE_NOT_ALLOWED, "card not allowed for this transaction"),
    (TvrBit.PIN_TRY_LIMIT_EXCEEDED, "PIN try limit exceeded"),
    (TvrBit.PIN_NOT_ENTERED, "PIN not entered"),
    (TvrBit.PIN_PAD_NOT_PRESENT, "PIN pad not present or not working"),
    (TvrBit.UNRECOGNISED_CVM, "the card asks for an unknown verification method"),
    (TvrBit.CARDHOLDER_VERIFICATION_FAILED, "cardholder verification failed"),
    (TvrBit.UCOL_EXCEEDED, "consecutive offline limit reached on the card"),
    (TvrBit.LCOL_EXCEEDED, "consecutive offline limit reached on the card"),
    (TvrBit.NEW_CARD, "new card"),
    (TvrBit.FLOOR_LIMIT_EXCEEDED, "amount above the floor limit"),
    (TvrBit.RANDOMLY_SELECTED_ONLINE, "random selection for online"),
    (TvrBit.MERCHANT_FORCED_ONLINE, "merchant forced online"),
    (TvrBit.ISSUER_AUTHENTICATION_FAILED, "issuer authentication failed"),
    (TvrBit.ODA_NOT_PERFORMED, "card not authenticated offline"),
)

#: ISO 8583 response codes an issuer commonly sends back as the ARC (8A).
ISSUER_CODES: dict[str, str] = {
    "01": "refer to the card issuer",
    "03": "invalid merchant",
    "04": "pick up the card",
    "05": "do not honour",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "invalid card number",
    "30": "format error",
    "41": "lost card",
    "43": "stolen card",
    "51": "insufficient funds",
    "54": "expired card",
    "55": "wrong PIN",
    "57": "transaction not permitted to the cardholder",
    "58": "transaction not permitted to the terminal",
    "59": "suspected fraud",
    "61": "amount limit exceeded",
    "62": "restricted card",
    "65": "activity limit exceeded",
    "75": "PIN try limit exceeded",
    "91": "issuer unavailable",
    "96": "issuer system malfunction",
}


def tvr_causes(tvr: Tvr, *, limit: int = 3, ignore: frozenset[TvrBit] = frozenset()
               ) -> list[str]:
    """The words of the set TVR bits that explain an outcome, most telling first."""
    words: list[str] = []
    for bit, text in _CAUSES:
        if bit in tvr and bit not in ignore and text not in words:
            if bit is TvrBit.CARDHOLDER_VERIFICATION_FAILED and any(
                    b in tvr for b in (TvrBit.PIN_TRY_LIMIT_EXCEEDED, TvrBit.PIN_NOT_ENTERED,
                                       TvrBit.PIN_PAD_NOT_PRESENT, TvrBit.UNRECOGNISED_CVM)):
                continue  # the specific PIN reason already says it
            words.append(text)
    return words[:limit]


def _issuer_words(arc: str) -> str:
    text = ISSUER_CODES.get(arc)
    return f"{text} (issuer code {arc})" if text else f"declined by the issuer (code {arc})"


def describe_outcome(decision: str, tvr: Tvr, *, arc: str,
                     ignore: frozenset[TvrBit] = frozenset()) -> str:
    """One line saying why ``decision`` was reached; ``""`` when there is no decision.

    ``ignore``: TVR bits that explain nothing on this path (contactless leaves "ODA not
    performed" on every online cryptogram).
    """
    causes = tvr_causes(tvr, ignore=ignore)
    why = ", ".join(causes)
    if decision == "approved_offline":
        return "approved offline by the card (TC)"
    if decision == "approved_online":
        issuer_auth = TvrBit.ISSUER_AUTHENTICATION_FAILED in tvr
        return "approved online by the issuer" + (
            " (issuer authentication failed)" if issuer_auth else "")
    if decision in ("approved_unable_online", "declined_unable_online"):
        online_why = why or "the card asked to go online"
        verdict = ("approved offline by the default action codes"
                   if decision == "approved_unable_online" else "declined")
        return f"{online_why}, no host reachable; {verdict}"
    if decision == "declined_online":
        if arc and arc not in ISO_APPROVED:
            return _issuer_words(arc)
        if TvrBit.CDA_FAILED in tvr:
            return "approved by the issuer, but the card's signature check (CDA) failed"
        return "approved by the issuer, but the card declined (AAC)"
    if decision == "declined_offline":
        if why:
            return f"declined offline: {why}"
        return "card declined (AAC)"
    return ""
