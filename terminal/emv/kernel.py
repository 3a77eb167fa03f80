"""The EMV kernel: one transaction from SELECT to the final cryptogram.

EMV 4.4 Book 3 §10 in order, each step in its own module:

==========================  =============================================  ==================
step                        rule                                           module
==========================  =============================================  ==================
application selection       Book 1 §12                                     ``selection``
initiate app. processing    Book 3 §10.1: GPO with PDOL, format 1/2        ``contact``
read application data       Book 3 §10.2: READ RECORD per AFL, ODA list    ``contact``
offline data authentication Book 3 §10.3, Book 2 §5–6: SDA, DDA, CDA       ``oda``
processing restrictions     Book 3 §10.4                                   ``risk``
cardholder verification     Book 3 §10.5                                   ``cvm``
terminal risk management    Book 3 §10.6                                   ``risk``
terminal action analysis    Book 3 §10.7                                   ``risk``
card action analysis        Book 3 §10.8: GENERATE AC 1 (+ CDA)            ``contact``
online processing           Book 3 §10.9: 91 in GENERATE AC 2 when CDOL2   ``contact``,
                            asks for it, else EXTERNAL AUTHENTICATE when   ``online``
                            the AIP says issuer authentication
issuer-to-card scripts      Book 3 §10.10: 71 before, 72 after GEN AC 2    ``online``
completion                  Book 3 §10.11: GENERATE AC 2, unable-online    ``contact``
==========================  =============================================  ==================

The result model is :mod:`terminal.emv.result`; the contactless path (PPSE + qVSDC) is
:mod:`terminal.emv.contactless`. The kernel is handed a :class:`drivers.base.CardSession`
and never imports pyscard. This module keeps re-exporting the public names of the
online boundary and the result so that callers import them from one place.
"""

from __future__ import annotations

from drivers.base import CardSession
from terminal.emv.apdu import CardChannel
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.contact import ContactFlow, GpoRefusedError, parse_afl, terminal_data
from terminal.emv.contactless import QvsdcFlow
from terminal.emv.cvm import PinCallback
from terminal.emv.mchip_contactless import MASTERCARD_RID, MChipContactlessFlow
from terminal.emv.offline_pin import OfflinePinCallback, OfflinePinRequest
from terminal.emv.online import OnlineAuthoriser, OnlineRequest, OnlineResponse
from terminal.emv.result import TransactionResult
from terminal.emv.selection import Chooser, choose_first, select_application

__all__ = [
    "ContactFlow",
    "EmvKernel",
    "OfflinePinCallback",
    "OfflinePinRequest",
    "OnlineAuthoriser",
    "OnlineRequest",
    "OnlineResponse",
    "QvsdcFlow",
    "TransactionResult",
    "parse_afl",
    "terminal_data",
]


class EmvKernel:
    """Runs EMV transactions on card sessions with one configuration.

    ``pin_entry`` returns an enciphered PIN block for online PIN (see :mod:`.cvm`);
    ``offline_pin`` has the PIN pad encipher the PIN for the card (CVM 04/05, see
    :mod:`.offline_pin`);
    ``authoriser`` reaches the issuer (``None``: the terminal has no host, every ARQC takes
    the unable-to-go-online path); ``chooser`` picks among several applications.
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        pin_entry: PinCallback | None = None,
        authoriser: OnlineAuthoriser | None = None,
        chooser: Chooser = choose_first,
        offline_pin: OfflinePinCallback | None = None,
    ) -> None:
        self.config = config
        self.pin_entry = pin_entry
        self.offline_pin = offline_pin
        self.authoriser = authoriser
        self.chooser = chooser

    async def contact_flow(
        self, session: CardSession, txn: TransactionData | None = None
    ) -> ContactFlow:
        """Select the application on ``session`` and return its contact flow, no step run yet.

        The public entry to the kernel's single steps: ``await flow.initiate_and_read()``
        runs initiate application processing and read application data (Book 3 §10.1–10.2)
        and leaves the card's data in ``flow.card``. ``txn=None`` reads without a
        transaction (the PDOL gets no terminal data).
        """
        channel = CardChannel(session)
        selected = await select_application(channel, self.config, chooser=self.chooser)
        return ContactFlow(self.config, channel, selected, txn, pin_entry=self.pin_entry,
                           authoriser=self.authoriser, offline_pin=self.offline_pin)

    async def read(self, session: CardSession, *, contactless: bool = False) -> TransactionResult:
        """Select the application and read its records, no cryptogram (``etika card read``)."""
        if contactless:
            channel = CardChannel(session)
            selected = await select_application(
                channel, self.config, contactless=True, chooser=self.chooser
            )
            flow_class = (MChipContactlessFlow if selected.aid[:5] == MASTERCARD_RID
                          else QvsdcFlow)
            return await flow_class(self.config, channel, selected, None,
                                    pin_entry=self.pin_entry,
                                    authoriser=self.authoriser).read_only()
        flow = await self.contact_flow(session)
        await flow.initiate_and_read()
        return flow.result()

    async def transact(
        self, session: CardSession, txn: TransactionData, *, contactless: bool = False
    ) -> TransactionResult:
        """Run one transaction to its final cryptogram."""
        channel = CardChannel(session)
        if contactless:
            selected = await select_application(
                channel, self.config, contactless=True, chooser=self.chooser
            )
            if selected.aid[:5] == MASTERCARD_RID:
                # Kernel 2 (Book B: the default kernel of RID A000000004): M/Chip, EMV mode.
                return await MChipContactlessFlow(self.config, channel, selected, txn,
                                                  pin_entry=self.pin_entry,
                                                  authoriser=self.authoriser).run()
            return await QvsdcFlow(self.config, channel, selected, txn,
                                   pin_entry=self.pin_entry, authoriser=self.authoriser).run()
        refused: set[bytes] = set()
        while True:
            selected = await select_application(
                channel, self.config, chooser=self.chooser, exclude=frozenset(refused)
            )
            flow = ContactFlow(self.config, channel, selected, txn, pin_entry=self.pin_entry,
                               authoriser=self.authoriser, offline_pin=self.offline_pin)
            try:
                return await flow.run()
            except GpoRefusedError:
                # Book 3 §10.1: GPO 6985 → drop the application, back to selection.
                refused.add(selected.aid)
