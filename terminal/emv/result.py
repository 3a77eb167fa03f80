"""The result of one EMV transaction, as the CLI, the payment manager and receipts see it."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.base import EncryptedPin

__all__ = ["TransactionResult"]


@dataclass(slots=True)
class TransactionResult:
    """Everything the CLI, the manager and the receipt need; no clear card data in repr."""

    aid: str
    label: str
    pan_masked: str
    expiry: str | None
    oda: str = "none"
    oda_result: str = "not_performed"
    cvm: str = "none"
    cvm_results: str = "3F0000"
    tvr: str = "0000000000"
    tsi: str = "0000"
    first_cryptogram: str = ""
    cryptogram: str = ""
    decision: str = ""
    arc: str = ""
    atc: str = ""
    application_cryptogram: str = ""
    interface: str = "contact"
    network: str = ""
    script_results: list[str] = field(default_factory=list)
    #: Issuer Script Results (9F5B) for the online advice / reversal.
    issuer_script_results: str = ""
    #: Why the transaction ended so, in words (issue #16 item 4): "card declined (AAC)"…
    reason: str = ""
    online_pin: EncryptedPin | None = field(default=None, repr=False)
    #: Card and terminal data of the transaction (clear PAN inside: never log, never print).
    emv_data: dict[int, bytes] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, str | None]:
        return {
            "aid": self.aid,
            "label": self.label,
            "pan_masked": self.pan_masked,
            "expiry": self.expiry,
            "oda": self.oda,
            "oda_result": self.oda_result,
            "cvm": self.cvm,
            "cvm_results": self.cvm_results,
            "tvr": self.tvr,
            "tsi": self.tsi,
            "first_cryptogram": self.first_cryptogram,
            "cryptogram": self.cryptogram,
            "decision": self.decision,
            "reason": self.reason,
            "arc": self.arc,
            "atc": self.atc,
            "interface": self.interface,
            "network": self.network,
            # 9F5B, Book 4 Annex A5: one result byte + script id per script the host sent.
            "issuer_script_results": self.issuer_script_results or None,
        }

    @property
    def approved(self) -> bool:
        return self.cryptogram == "TC" or self.decision == "approved_online"
