"""The simulated cards, as data: what each application holds and how the card behaves.

A :class:`CardProfile` is one physical card (ATR, PSE/PPSE, T=0 behaviour) with one or
more :class:`AppProfile` applications. :mod:`simulators.card.personalise` turns an
application into records, certificates and keys; :mod:`simulators.card.card` runs it.

Profile names (``etika sim card --profile NAME``) are the keys of :data:`PROFILES`:

======================  ==============================================================
``visa-credit``         Visa credit, contact (DDA, format 1 GPO, ARPC method 1 in
                        GENERATE AC 2) and contactless (qVSDC with fDDA); online PIN
                        first in the CVM list
``mastercard-debit``    Mastercard debit, CDA, format 2 GPO, EXTERNAL AUTHENTICATE
``bancontact-maestro``  Bancontact Maestro (``A0000000043060``): CDA, online PIN only,
                        never approves offline
``cb``                  CB (Cartes Bancaires), SDA, no PSE, offline plaintext PIN,
                        answers in T=0 style (61xx / 6Cxx)
``domestic-visa``       Moroccan domestic debit co-badged with Visa: two applications in
                        the PSE (domestic ``D5040000011010`` first, Visa second), ARPC
                        method 2 for the domestic one, which prefers offline enciphered PIN
                        (CVM 44, PIN 1234, 3 tries in 9F17)
``visa-expired``        the Visa credit card with an application expiry date in the past
``visa-blocked``        a Visa card whose application is blocked (SELECT answers 6283)
``domestic-visa-ddf``   the co-badged card with a PSE whose directory lists the domestic
                        application and a DDF (9D ``ETIKA.DDF01``) holding the Visa one
``mastercard-contactless``  Mastercard M/Chip over contactless (Book C-2): PPSE, PDOL with
                        9F1D, CDA in GENERATE AC; contact as ``mastercard-debit``
``mastercard-mobile``   the same in a phone: AIP says on-device cardholder verification
``visa-revoked``        a Visa card whose issuer public key certificate is on the
                        certification revocation list (:data:`REVOKED_ISSUER_CERTIFICATES`)
``visa-sfi12``          the Visa credit card with an issuer-proprietary record in SFI 12
                        that is not TLV (EMV does not parse it; Book 3 §10.2)
``card-blocked``        a card without PSE that answers 6A81 (card blocked) to SELECT of
                        its application during the list-of-AIDs search (Book 1 §12.3.3)
======================  ==============================================================

Test PANs are Luhn-valid numbers from the schemes' test ranges; they are card data all
the same, so nothing here prints them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

__all__ = [
    "ATR_CONTACTLESS",
    "ATR_T0",
    "ATR_T1",
    "CA_INDEX",
    "FAULTS",
    "PROFILES",
    "REVOKED_ISSUER_CERTIFICATES",
    "AppProfile",
    "ArpcMode",
    "CardProfile",
    "Contactless",
    "Interface",
    "Oda",
    "get_profile",
    "luhn_ok",
]


class Interface(enum.Enum):
    CONTACT = "contact"
    CONTACTLESS = "contactless"


class Oda(enum.Enum):
    NONE = "none"
    SDA = "sda"
    DDA = "dda"
    CDA = "cda"


class ArpcMode(enum.Enum):
    """Where the card expects the issuer's ARPC and how it is computed."""

    METHOD1_GENAC2 = "method1-genac2"  # tag 91 in CDOL2 (AIP: no issuer authentication)
    METHOD1_EXTERNAL = "method1-external"  # EXTERNAL AUTHENTICATE (AIP bit set)
    METHOD2_GENAC2 = "method2-genac2"  # tag 91 (ARPC ‖ CSU) in CDOL2


#: The test CA key index per RID: the default profile's capks.toml lists these keys.
CA_INDEX: dict[str, int] = {
    "A000000003": 0x92,  # Visa
    "A000000004": 0xF1,  # Mastercard
    "A000000042": 0xC1,  # CB
    "D504000001": 0x01,  # Moroccan domestic scheme (this project's profile-defined RID)
}

#: Issuer certificates the schemes revoked, as ``(RID, CA index, certificate serial)``
#: (EMV 4.4 Book 2 §5.3 step 10): the default profile's ``crl.toml`` lists them and the
#: ``visa-revoked`` card carries the first one.
REVOKED_ISSUER_CERTIFICATES: tuple[tuple[str, int, str], ...] = (
    ("A000000003", 0x92, "7E5E01"),
)

_CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F34039F4502")
_CDOL1_CDA = _CDOL1  # CDA needs the UN (9F37) in CDOL1: present
_CDOL2_91 = bytes.fromhex("8A029F02069F03069F1A0295055F2A029A039C019F3704910A")
_CDOL2_91_M2 = bytes.fromhex("8A029F02069F03069F1A0295055F2A029A039C019F37049108")
_CDOL2 = bytes.fromhex("8A029F02069F03069F1A0295055F2A029A039C019F3704")
_DDOL = bytes.fromhex("9F3704")

# CVM lists (Book 3 §10.5, Annex C3): X ‖ Y amounts then (CVM code, condition) pairs.
# 42 = enciphered PIN online, apply next if fails; 1E = signature; 1F = no CVM;
# 41 = plaintext PIN by ICC, apply next if fails; condition 03 = if terminal supports it,
# 00 = always.
_CVM_ONLINE_PIN = bytes.fromhex("00000000" "00000000" "4203" "1E03" "1F03")
_CVM_OFFLINE_PIN = bytes.fromhex("00000000" "00000000" "4103" "4203" "1E03")
# 44 = enciphered PIN verified by the ICC (offline), apply next if it fails (Book 3 C3).
_CVM_ENCIPHERED_OFFLINE_PIN = bytes.fromhex("00000000" "00000000" "4403" "4203" "1E03" "1F03")


@dataclass(frozen=True)
class Contactless:
    """Contactless parameters: Visa qVSDC (VCPS, as far as modelled) or Mastercard M/Chip.

    ``kernel="mchip"`` (EMV Contactless Book C-2, EMV mode): the card answers GPO with AIP
    and AFL only and gives its cryptogram in GENERATE AC (CDA), as on contact; ``pdol`` is
    its PDOL (with Terminal Risk Management Data, 9F1D).
    """

    aip: bytes = bytes.fromhex("2000")  # fDDA supported
    offline_limit: int = 5000  # minor units: above, the card asks to go online
    cvm_limit: int = 20000  # minor units: above, a CVM is required (CTQ)
    kernel: str = "qvsdc"
    pdol: bytes = b""


@dataclass(frozen=True)
class AppProfile:
    """One EMV application on the card; amounts are in minor units."""

    aid: str
    label: str
    issuer: str  # key of simulators.card.issuer.ISSUERS
    pan: str = field(repr=False)  # card data: kept out of every repr and log
    psn: int = 1
    priority: int = 1
    preferred_name: str = ""
    expiry: str = "301231"  # YYMMDD, tag 5F24
    effective: str = "240101"  # YYMMDD, tag 5F25
    cert_expiry: str = "1230"  # MMYY of the issuer/ICC certificates
    service_code: str = "201"
    cardholder_name: str = "ETIKA/TEST CARD"
    issuer_country: int = 504
    currency: int = 504
    oda: Oda = Oda.DDA
    aip: bytes = bytes.fromhex("3800")
    cvm_list: bytes = _CVM_ONLINE_PIN
    auc: bytes = bytes.fromhex("FF00")
    app_version: bytes = bytes.fromhex("008C")
    iac_default: bytes = bytes.fromhex("0000000000")
    iac_denial: bytes = bytes.fromhex("0000000000")
    iac_online: bytes = bytes.fromhex("0000000000")
    pdol: bytes = b""
    cdol1: bytes = _CDOL1
    cdol2: bytes = _CDOL2_91
    ddol: bytes = _DDOL
    gpo_format: int = 1
    genac_format: int = 1
    internal_auth_format: int = 1
    arpc: ArpcMode = ArpcMode.METHOD1_GENAC2
    offline_limit: int = 10000  # the card's own limit for approving offline (TC)
    pin: str = field(default="1234", repr=False)
    pin_try_limit: int = 3
    lcol: int = 2
    ucol: int = 5
    blocked: bool = False
    contactless: Contactless | None = None
    cvn: int = 0x12
    sfi11_oda: bool = False  # put the IACs in an ODA record of SFI 11 (hashed whole)
    #: Issuer public key certificate serial (3 bytes hex); empty: derived from the issuer.
    issuer_cert_serial: str = ""
    #: Record 1 of SFI 12 (an issuer-proprietary file, outside EMV's format rules), listed
    #: in the AFL but not for ODA, holding these bytes as they are (not TLV, say).
    proprietary_record: bytes = b""

    @property
    def rid(self) -> str:
        return self.aid[:10]

    @property
    def ca_index(self) -> int:
        return CA_INDEX[self.rid]


@dataclass(frozen=True)
class CardProfile:
    name: str
    description: str
    apps: tuple[AppProfile, ...]
    pse: bool = True
    ppse: bool = False
    #: A DDF under the PSE (Book 1 §12.3.2): its name, and the AIDs its directory lists
    #: (the PSE directory lists the other applications and a ``61[9D name]`` entry).
    ddf: bytes = b""
    ddf_aids: frozenset[str] = frozenset()
    t0: bool = False
    atr: bytes = b""
    faults: frozenset[str] = field(default_factory=frozenset)
    #: The card is blocked: SELECT of an application answers 6A81 (Book 1 §12.3.3).
    select_6a81: bool = False

    def with_faults(self, *faults: str) -> CardProfile:
        """The same card with deliberate faults, for kernel tests.

        ``tamper-issuer-cert``, ``tamper-icc-cert``, ``tamper-ssad``, ``tamper-sdad``
        (one bit flipped in the stored/produced signature), ``t0`` (answer in T=0 style).
        """
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(FAULTS)}")
        return replace(self, faults=self.faults | frozenset(faults))


FAULTS = frozenset({"tamper-issuer-cert", "tamper-icc-cert", "tamper-ssad", "tamper-sdad", "t0"})


def luhn_ok(pan: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1 Annex B."""
    total = 0
    for index, char in enumerate(reversed(pan)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


_VISA = AppProfile(
    aid="A0000000031010",
    label="VISA CREDIT",
    preferred_name="Visa Credit",
    issuer="visa",
    pan="4761739001010010",
    oda=Oda.DDA,
    aip=bytes.fromhex("3800"),  # DDA, cardholder verification, terminal risk management
    cvm_list=_CVM_ONLINE_PIN,
    iac_default=bytes.fromhex("D84000A800"),
    iac_online=bytes.fromhex("D84004F800"),
    iac_denial=bytes.fromhex("0010000000"),
    cdol2=_CDOL2_91,
    arpc=ArpcMode.METHOD1_GENAC2,
    contactless=Contactless(),
)

_MASTERCARD = AppProfile(
    aid="A0000000041010",
    label="MASTERCARD",
    preferred_name="Debit Mastercard",
    issuer="mastercard",
    pan="5413330089010020",
    oda=Oda.CDA,
    aip=bytes.fromhex("3D00"),  # DDA, CVM, TRM, issuer authentication, CDA
    cvm_list=_CVM_ONLINE_PIN,
    app_version=bytes.fromhex("0002"),
    iac_default=bytes.fromhex("F040008800"),
    iac_online=bytes.fromhex("F04004F800"),
    pdol=bytes.fromhex("9F3501"),
    cdol1=_CDOL1_CDA,
    cdol2=_CDOL2,
    gpo_format=2,
    genac_format=2,
    internal_auth_format=2,
    arpc=ArpcMode.METHOD1_EXTERNAL,
    offline_limit=5000,
)

#: M/Chip contactless (Book C-2, EMV mode): AIP byte 1 CVM 10, TRM 08, CDA 01, byte 2 b8
#: "EMV mode supported"; PDOL: Terminal Risk Management Data, terminal type, country.
_MCHIP_CL = Contactless(
    aip=bytes.fromhex("1980"),
    offline_limit=5000,
    kernel="mchip",
    pdol=bytes.fromhex("9F1D08" "9F3501" "9F1A02"),
)

_CB = AppProfile(
    aid="A0000000421010",
    label="CB",
    issuer="cb",
    pan="4970100000000063",
    issuer_country=250,
    currency=978,
    oda=Oda.SDA,
    aip=bytes.fromhex("5C00"),  # SDA, CVM, TRM, issuer authentication
    cvm_list=_CVM_OFFLINE_PIN,
    app_version=bytes.fromhex("0002"),
    iac_default=bytes.fromhex("FC40ACA000"),
    iac_online=bytes.fromhex("FC40ACF800"),
    ddol=b"",
    cdol2=_CDOL2,
    arpc=ArpcMode.METHOD1_EXTERNAL,
)

_MAESTRO = AppProfile(
    aid="A0000000043060",
    label="MAESTRO",
    preferred_name="Bancontact Maestro",
    issuer="bancontact",
    pan="6703123400000029",
    issuer_country=56,
    currency=978,
    oda=Oda.CDA,
    aip=bytes.fromhex("3D00"),
    cvm_list=bytes.fromhex("00000000" "00000000" "0200"),  # online PIN, always, no fallback
    app_version=bytes.fromhex("0002"),
    iac_default=bytes.fromhex("F040008800"),
    iac_online=bytes.fromhex("F04004F800"),
    iac_denial=bytes.fromhex("0000800000"),  # no CVM performed → decline
    pdol=bytes.fromhex("9F3501"),
    cdol1=_CDOL1_CDA,
    cdol2=_CDOL2,
    gpo_format=2,
    genac_format=2,
    internal_auth_format=2,
    arpc=ArpcMode.METHOD1_EXTERNAL,
    offline_limit=0,  # debit with no offline approval: every TC request becomes an ARQC
)

_DOMESTIC = AppProfile(
    aid="D5040000011010",
    label="CARTE NATIONALE",
    preferred_name="Carte nationale",
    issuer="domestic",
    pan="6375080000000014",
    priority=1,
    oda=Oda.DDA,
    aip=bytes.fromhex("3800"),
    cvm_list=_CVM_ENCIPHERED_OFFLINE_PIN,
    app_version=bytes.fromhex("0001"),
    cdol2=_CDOL2_91_M2,
    gpo_format=2,
    genac_format=2,
    internal_auth_format=2,
    arpc=ArpcMode.METHOD2_GENAC2,
    sfi11_oda=True,
)


def _with_tck(atr_without_tck: bytes) -> bytes:
    """Append TCK: the XOR of T0 up to the last byte (ISO/IEC 7816-3 §8.2.5)."""
    tck = 0
    for byte in atr_without_tck[1:]:
        tck ^= byte
    return atr_without_tck + bytes([tck])


#: EMV basic ATRs (Book 1 §8.3): T=1 (TD1 = 81, TD2 = 31, IFSC FE, BWI 4 / CWI 5), and T=0.
ATR_T1 = _with_tck(bytes.fromhex("3BE000008131FE45"))
ATR_T0 = bytes.fromhex("3B600000")
#: PC/SC Part 3 pseudo-ATR of an ISO 14443-4 card with no historical bytes.
ATR_CONTACTLESS = _with_tck(bytes.fromhex("3B8080 01".replace(" ", "")))

PROFILES: dict[str, CardProfile] = {
    profile.name: profile
    for profile in (
        CardProfile(
            "visa-credit",
            "Visa credit: contact DDA and contactless qVSDC/fDDA, online PIN",
            (_VISA,),
            ppse=True,
            atr=ATR_T1,
        ),
        CardProfile(
            "mastercard-debit",
            "Mastercard debit: CDA, format 2 responses, EXTERNAL AUTHENTICATE",
            (_MASTERCARD,),
            atr=ATR_T1,
        ),
        CardProfile(
            "mastercard-contactless",
            "Mastercard M/Chip contactless (Book C-2): PPSE, PDOL with 9F1D, CDA",
            (replace(_MASTERCARD, pan="5413330089010038", contactless=_MCHIP_CL),),
            ppse=True,
            atr=ATR_T1,
        ),
        CardProfile(
            "mastercard-mobile",
            "Mastercard M/Chip in a phone: on-device cardholder verification (CDCVM)",
            (
                replace(
                    _MASTERCARD,
                    pan="5413330089010046",
                    contactless=replace(_MCHIP_CL, aip=bytes.fromhex("1B80")),
                ),
            ),
            ppse=True,
            atr=ATR_T1,
        ),
        CardProfile(
            "bancontact-maestro",
            "Bancontact Maestro: CDA, online PIN only, always online",
            (_MAESTRO,),
            atr=ATR_T1,
        ),
        CardProfile(
            "cb",
            "CB: SDA, no PSE, offline plaintext PIN, T=0 style answers (61xx/6Cxx)",
            (_CB,),
            pse=False,
            t0=True,
            atr=ATR_T0,
        ),
        CardProfile(
            "domestic-visa",
            "Moroccan domestic debit co-badged with Visa: two applications",
            (
                _DOMESTIC,
                replace(
                    _VISA,
                    label="VISA DEBIT",
                    preferred_name="Visa Debit",
                    pan="4761739001010036",
                    priority=2,
                    contactless=None,
                ),
            ),
            atr=ATR_T1,
        ),
        CardProfile(
            "visa-expired",
            "Visa credit whose application expired (5F24 in the past)",
            (replace(_VISA, pan="4761739001010044", expiry="231130", effective="200101"),),
            ppse=True,
            atr=ATR_T1,
        ),
        CardProfile(
            "domestic-visa-ddf",
            "Co-badged domestic + Visa: the Visa application is behind a DDF in the PSE",
            (
                replace(_DOMESTIC, pan="6375080000000022"),
                replace(
                    _VISA,
                    label="VISA DEBIT",
                    preferred_name="Visa Debit",
                    pan="4761739001010077",
                    priority=2,
                    contactless=None,
                ),
            ),
            ddf=b"ETIKA.DDF01",
            ddf_aids=frozenset({"A0000000031010"}),
            atr=ATR_T1,
        ),
        CardProfile(
            "visa-revoked",
            "Visa credit whose issuer certificate is revoked (on the terminal's CRL)",
            (
                replace(
                    _VISA,
                    pan="4761739001010069",
                    issuer_cert_serial=REVOKED_ISSUER_CERTIFICATES[0][2],
                ),
            ),
            ppse=True,
            atr=ATR_T1,
        ),
        CardProfile(
            "visa-sfi12",
            "Visa credit with an issuer-proprietary record in SFI 12 that is not TLV",
            (replace(_VISA, pan="4761739001010085",
                     proprietary_record=b"ETIKA PROPRIETARY \xff\x00\x01"),),
            atr=ATR_T1,
        ),
        CardProfile(
            "card-blocked",
            "A blocked card: no PSE, SELECT of its application answers 6A81",
            (replace(_VISA, pan="4761739001010093"),),
            pse=False,
            select_6a81=True,
            atr=ATR_T1,
        ),
        CardProfile(
            "visa-blocked",
            "Visa card whose application is blocked: SELECT answers 6283",
            (replace(_VISA, pan="4761739001010051", blocked=True),),
            ppse=True,
            atr=ATR_T1,
        ),
    )
}


def get_profile(name: str) -> CardProfile:
    """The card profile ``name``; ``ValueError`` lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown card profile {name!r}; known: {', '.join(PROFILES)}"
        ) from None
