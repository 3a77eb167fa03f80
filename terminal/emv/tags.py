"""The EMV data element table (EMV 4.4 Book 3 Annex A1, Book 4 Annex A, contactless kernels).

Each known tag has a name and a *format* (Book 3 §4.3): ``n`` numeric BCD right-justified
and left-padded with ``0``; ``cn`` compressed numeric BCD left-justified and right-padded
with ``F``; ``b`` binary; ``a``/``an``/``ans`` alphabetic/alphanumeric/special characters,
left-justified and right-padded with ``00``. The format drives DOL padding and truncation
(Book 3 §5.4, :mod:`terminal.emv.dol`).

``SENSITIVE_TAGS`` are the objects that carry cardholder data (PAN, track data, name, PIN
data): they never appear clear in a ``repr``, a log, a message or a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SENSITIVE_TAGS", "TAGS", "Format", "TagInfo", "format_of", "name_of"]

Format = Literal["n", "cn", "b", "a", "an", "ans"]


@dataclass(frozen=True, slots=True)
class TagInfo:
    tag: int
    name: str
    format: Format
    #: Who provides it: "card", "terminal" or "issuer".
    source: str = "card"


def _t(tag: int, name: str, fmt: Format, source: str = "card") -> TagInfo:
    return TagInfo(tag, name, fmt, source)


_TABLE: tuple[TagInfo, ...] = (
    # Card data (Book 3 Annex A1).
    _t(0x42, "Issuer Identification Number (IIN)", "n"),
    _t(0x4F, "Application Dedicated File (ADF) Name", "b"),
    _t(0x50, "Application Label", "ans"),
    _t(0x56, "Track 1 Data", "ans"),
    _t(0x57, "Track 2 Equivalent Data", "b"),
    _t(0x5A, "Application Primary Account Number (PAN)", "cn"),
    _t(0x5F20, "Cardholder Name", "ans"),
    _t(0x5F24, "Application Expiration Date", "n"),
    _t(0x5F25, "Application Effective Date", "n"),
    _t(0x5F28, "Issuer Country Code", "n"),
    _t(0x5F2D, "Language Preference", "an"),
    _t(0x5F30, "Service Code", "n"),
    _t(0x5F34, "Application PAN Sequence Number", "n"),
    _t(0x5F50, "Issuer URL", "ans"),
    _t(0x5F53, "International Bank Account Number (IBAN)", "b"),
    _t(0x5F54, "Bank Identifier Code (BIC)", "b"),
    _t(0x5F55, "Issuer Country Code (alpha2)", "a"),
    _t(0x5F56, "Issuer Country Code (alpha3)", "a"),
    _t(0x61, "Application Template", "b"),
    _t(0x6F, "File Control Information (FCI) Template", "b"),
    _t(0x70, "READ RECORD Response Message Template", "b"),
    _t(0x71, "Issuer Script Template 1", "b", "issuer"),
    _t(0x72, "Issuer Script Template 2", "b", "issuer"),
    _t(0x73, "Directory Discretionary Template", "b"),
    _t(0x77, "Response Message Template Format 2", "b"),
    _t(0x80, "Response Message Template Format 1", "b"),
    _t(0x82, "Application Interchange Profile", "b"),
    _t(0x84, "Dedicated File (DF) Name", "b"),
    _t(0x86, "Issuer Script Command", "b", "issuer"),
    _t(0x87, "Application Priority Indicator", "b"),
    _t(0x88, "Short File Identifier (SFI)", "b"),
    _t(0x89, "Authorisation Code", "an", "issuer"),
    _t(0x8A, "Authorisation Response Code", "an", "issuer"),
    _t(0x8C, "Card Risk Management Data Object List 1 (CDOL1)", "b"),
    _t(0x8D, "Card Risk Management Data Object List 2 (CDOL2)", "b"),
    _t(0x8E, "Cardholder Verification Method (CVM) List", "b"),
    _t(0x8F, "Certification Authority Public Key Index", "b"),
    _t(0x90, "Issuer Public Key Certificate", "b"),
    _t(0x91, "Issuer Authentication Data", "b", "issuer"),
    _t(0x92, "Issuer Public Key Remainder", "b"),
    _t(0x93, "Signed Static Application Data", "b"),
    _t(0x94, "Application File Locator (AFL)", "b"),
    _t(0x97, "Transaction Certificate Data Object List (TDOL)", "b"),
    _t(0x9D, "Directory Definition File (DDF) Name", "b"),
    _t(0x9F05, "Application Discretionary Data", "b"),
    _t(0x9F07, "Application Usage Control", "b"),
    _t(0x9F08, "Application Version Number (card)", "b"),
    _t(0x9F0B, "Cardholder Name Extended", "ans"),
    _t(0x9F0D, "Issuer Action Code - Default", "b"),
    _t(0x9F0E, "Issuer Action Code - Denial", "b"),
    _t(0x9F0F, "Issuer Action Code - Online", "b"),
    _t(0x9F10, "Issuer Application Data", "b"),
    _t(0x9F11, "Issuer Code Table Index", "n"),
    _t(0x9F12, "Application Preferred Name", "ans"),
    _t(0x9F13, "Last Online Application Transaction Counter (ATC) Register", "b"),
    _t(0x9F14, "Lower Consecutive Offline Limit", "b"),
    _t(0x9F17, "Personal Identification Number (PIN) Try Counter", "b"),
    _t(0x9F19, "Token Requestor ID", "n"),
    _t(0x9F1F, "Track 1 Discretionary Data", "ans"),
    _t(0x9F20, "Track 2 Discretionary Data", "cn"),
    _t(0x9F23, "Upper Consecutive Offline Limit", "b"),
    _t(0x9F24, "Payment Account Reference (PAR)", "an"),
    _t(0x9F26, "Application Cryptogram", "b"),
    _t(0x9F27, "Cryptogram Information Data", "b"),
    _t(0x9F2D, "ICC PIN Encipherment Public Key Certificate", "b"),
    _t(0x9F2E, "ICC PIN Encipherment Public Key Exponent", "b"),
    _t(0x9F2F, "ICC PIN Encipherment Public Key Remainder", "b"),
    _t(0x9F32, "Issuer Public Key Exponent", "b"),
    _t(0x9F36, "Application Transaction Counter (ATC)", "b"),
    _t(0x9F38, "Processing Options Data Object List (PDOL)", "b"),
    _t(0x9F42, "Application Currency Code", "n"),
    _t(0x9F43, "Application Reference Currency Exponent", "n"),
    _t(0x9F44, "Application Currency Exponent", "n"),
    _t(0x9F45, "Data Authentication Code", "b"),
    _t(0x9F46, "ICC Public Key Certificate", "b"),
    _t(0x9F47, "ICC Public Key Exponent", "b"),
    _t(0x9F48, "ICC Public Key Remainder", "b"),
    _t(0x9F49, "Dynamic Data Authentication Data Object List (DDOL)", "b"),
    _t(0x9F4A, "Static Data Authentication Tag List", "b"),
    _t(0x9F4B, "Signed Dynamic Application Data", "b"),
    _t(0x9F4C, "ICC Dynamic Number", "b"),
    _t(0x9F4D, "Log Entry", "b"),
    _t(0x9F4F, "Log Format", "b"),
    _t(0x9F5D, "Available Offline Spending Amount", "n"),
    _t(0x9F63, "Offline Counter Initial Value", "b"),
    _t(0x9F69, "Card Authentication Related Data", "b"),
    _t(0x9F6B, "Track 2 Data (contactless)", "b"),
    _t(0x9F6C, "Card Transaction Qualifiers (CTQ)", "b"),
    _t(0x9F6E, "Form Factor Indicator / Third Party Data", "b"),
    _t(0x9F7C, "Customer Exclusive Data", "b"),
    _t(0xA5, "FCI Proprietary Template", "b"),
    _t(0xBF0C, "FCI Issuer Discretionary Data", "b"),
    # Terminal data (Book 3 Annex A1, Book 4).
    _t(0x5F2A, "Transaction Currency Code", "n", "terminal"),
    _t(0x5F36, "Transaction Currency Exponent", "n", "terminal"),
    _t(0x81, "Amount, Authorised (Binary)", "b", "terminal"),
    _t(0x83, "Command Template", "b", "terminal"),
    _t(0x8B, "Card Holder Verification (deprecated)", "b", "terminal"),
    _t(0x95, "Terminal Verification Results", "b", "terminal"),
    _t(0x98, "Transaction Certificate (TC) Hash Value", "b", "terminal"),
    _t(0x99, "Transaction Personal Identification Number (PIN) Data", "b", "terminal"),
    _t(0x9A, "Transaction Date", "n", "terminal"),
    _t(0x9B, "Transaction Status Information", "b", "terminal"),
    _t(0x9C, "Transaction Type", "n", "terminal"),
    _t(0x9F01, "Acquirer Identifier", "n", "terminal"),
    _t(0x9F02, "Amount, Authorised (Numeric)", "n", "terminal"),
    _t(0x9F03, "Amount, Other (Numeric)", "n", "terminal"),
    _t(0x9F04, "Amount, Other (Binary)", "b", "terminal"),
    _t(0x9F06, "Application Identifier (AID) - terminal", "b", "terminal"),
    _t(0x9F09, "Application Version Number (terminal)", "b", "terminal"),
    _t(0x9F15, "Merchant Category Code", "n", "terminal"),
    _t(0x9F16, "Merchant Identifier", "ans", "terminal"),
    _t(0x9F1A, "Terminal Country Code", "n", "terminal"),
    _t(0x9F1B, "Terminal Floor Limit", "b", "terminal"),
    _t(0x9F1C, "Terminal Identification", "an", "terminal"),
    _t(0x9F1D, "Terminal Risk Management Data", "b", "terminal"),
    _t(0x9F1E, "Interface Device (IFD) Serial Number", "an", "terminal"),
    _t(0x9F21, "Transaction Time", "n", "terminal"),
    _t(0x9F22, "Certification Authority Public Key Index (terminal)", "b", "terminal"),
    _t(0x9F33, "Terminal Capabilities", "b", "terminal"),
    _t(0x9F34, "Cardholder Verification Method (CVM) Results", "b", "terminal"),
    _t(0x9F35, "Terminal Type", "n", "terminal"),
    _t(0x9F37, "Unpredictable Number", "b", "terminal"),
    _t(0x9F39, "Point-of-Service (POS) Entry Mode", "n", "terminal"),
    _t(0x9F3A, "Amount, Reference Currency", "b", "terminal"),
    _t(0x9F3B, "Application Reference Currency", "n", "terminal"),
    _t(0x9F3C, "Transaction Reference Currency Code", "n", "terminal"),
    _t(0x9F3D, "Transaction Reference Currency Exponent", "n", "terminal"),
    _t(0x9F40, "Additional Terminal Capabilities", "b", "terminal"),
    _t(0x9F41, "Transaction Sequence Counter", "n", "terminal"),
    _t(0x9F4E, "Merchant Name and Location", "ans", "terminal"),
    _t(0x9F53, "Transaction Category Code", "an", "terminal"),
    _t(0x9F66, "Terminal Transaction Qualifiers (TTQ)", "b", "terminal"),
    _t(0x9F7A, "VLP Terminal Support Indicator", "b", "terminal"),
)

TAGS: dict[int, TagInfo] = {info.tag: info for info in _TABLE}

#: Tags whose values are cardholder data: masked everywhere they could be shown.
SENSITIVE_TAGS: frozenset[int] = frozenset(
    {
        0x5A,  # PAN
        0x57,  # Track 2 Equivalent Data
        0x56,  # Track 1 Data
        0x9F1F,  # Track 1 Discretionary Data
        0x9F20,  # Track 2 Discretionary Data
        0x9F6B,  # Track 2 Data (contactless)
        0x5F20,  # Cardholder Name (personal data)
        0x9F0B,  # Cardholder Name Extended
        0x99,  # Transaction PIN Data (the enciphered PIN block)
        0x5F53,  # IBAN
    }
)


def name_of(tag: int) -> str:
    info = TAGS.get(tag)
    return info.name if info else f"unknown tag {tag:X}"


def format_of(tag: int) -> Format:
    """The format of ``tag``; unknown (proprietary) tags are binary (Book 3 §5.4)."""
    info = TAGS.get(tag)
    return info.format if info else "b"
