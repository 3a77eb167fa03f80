"""``etika pay|refund|void|tx``: take payments and look after them, from the command line.

The commands parse and print; the payment itself is :class:`terminal.payments.manager.
PaymentManager`, built by the services (:meth:`terminal.services.TerminalServices.payments`).

Exit statuses: ``0`` approved (or done), ``1`` not approved (declined, cancelled) or a
reported error — the reason is printed in words —, ``2`` a usage mistake (a zero amount, an
unknown currency). Ctrl-C during a sale leaves no charge behind: the payment is handed to
recovery at once, which reverses whatever the acquirer may have approved, and the one-line
message says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from etika_argtypes import CommandGroups, seconds
from terminal.cli.context import CliContext
from terminal.money import Amount, Currency, parse_amount
from terminal.payments.model import PaymentEvent, PaymentOutcome, RefundOutcome, SaleRequest

if TYPE_CHECKING:
    from terminal.payments.model import EventSink
    from terminal.payments.recovery import RecoveryReport
    from terminal.services import TerminalServices

__all__ = ["register_pay", "register_refund", "register_tx", "register_void"]


def register_pay(groups: CommandGroups) -> None:
    pay = groups.add_parser("pay", help="take a payment: card, PIN, acquirer and PoP")
    pay.add_argument("--amount", required=True, help="amount, e.g. 25.00")
    pay.add_argument("--currency", default=None,
                     help="ISO 4217 code (default: the profile's default currency)")
    pay.add_argument("--reader", metavar="NAME",
                     help="PC/SC reader name (default: the first holding a card)")
    pay.add_argument("--contactless", action="store_true", help="the card is tapped")
    pay.add_argument("--simulated", metavar="PROFILE",
                     help="a simulated card in an in-process reader instead of pcscd "
                          "(needs the simulators; e.g. visa-credit)")
    pay.add_argument("--pinpad", metavar="PORT",
                     help="serial PIN pad for online PIN (default: none)")
    pay.add_argument("--order-ref", metavar="REF", help="the cash register's reference")
    pay.add_argument("--timeout", type=seconds, default=None,
                     help="seconds to wait for a card (default: the profile's)")
    pay.add_argument("--receipt", action="store_true", help="print the customer receipt")
    pay.add_argument("--json", action="store_true", help="print one JSON object")
    pay.set_defaults(handler=_pay)


def register_refund(groups: CommandGroups) -> None:
    refund = groups.add_parser("refund", help="refund all or part of an approved payment")
    refund.add_argument("payment_id", metavar="PAYMENT_ID")
    refund.add_argument("--amount", default=None,
                        help="amount to refund (default: all that is left)")
    refund.add_argument("--reason", default=None, help="why, for the journal")
    refund.add_argument("--json", action="store_true", help="print one JSON object")
    refund.set_defaults(handler=_refund)


def register_void(groups: CommandGroups) -> None:
    void = groups.add_parser("void", help="cancel an approved payment before the end of day")
    void.add_argument("payment_id", metavar="PAYMENT_ID")
    void.add_argument("--json", action="store_true", help="print one JSON object")
    void.set_defaults(handler=_void)


def register_tx(groups: CommandGroups) -> None:
    tx = groups.add_parser("tx", help="the terminal's payments: list, show, recover")
    commands = tx.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="payments, newest first")
    listing.add_argument("--state", help="only this state (e.g. completed, pop_deferred)")
    listing.add_argument("--last4", help="only cards ending with these digits")
    listing.add_argument("--since", help="from this date (YYYY-MM-DD)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_tx_list)
    show = commands.add_parser("show", help="one payment: attempts, fraud, PoP, receipt")
    show.add_argument("payment_id", metavar="PAYMENT_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_tx_show)
    recover = commands.add_parser(
        "recover", help="finish every payment a crash left mid-way; settle from the outbox")
    recover.add_argument("--json", action="store_true", help="print JSON")
    recover.set_defaults(handler=_tx_recover)


# --- pay ---------------------------------------------------------------------------------


def _pay(ctx: CliContext, args: argparse.Namespace) -> int:
    from terminal.cli.cmd_card import open_simulated_reader

    profile = ctx.profile()
    currency = profile.currency(args.currency) if args.currency else profile.default_currency
    request = SaleRequest(
        amount=_typed_amount(args.amount, currency), contactless=args.contactless,
        order_ref=args.order_ref, reader=args.reader,
        card_timeout_s=args.timeout or profile.payments.card_timeout_s,
    )
    reader = (open_simulated_reader(args.simulated, args.contactless) if args.simulated
              else None)
    seen: list[PaymentEvent] = []
    with ctx.services(card_reader=reader) as services:
        try:
            outcome = asyncio.run(_sale(services, request, args.pinpad, seen.append))
        except KeyboardInterrupt:
            payment = next((e.payment_id for e in seen if e.payment_id), None)
            report = asyncio.run(_recover(services))
            where = f"payment {payment}" if payment else "the payment"
            print(f"etika: interrupted: {where} was cancelled"
                  + ("; a reversal is queued in case the acquirer charged it"
                     if report.cancelled else "") + " (etika tx show for details)")
            return 130
    _print_outcome(outcome, args.json, args.receipt)
    return 0 if outcome.approved else 1


def _typed_amount(text: str, currency: Currency) -> Amount:
    """The cashier's amount; an unreadable one is a usage mistake (exit 2)."""
    from terminal.errors import MoneyError
    from terminal.payments.model import InvalidAmountError

    try:
        return parse_amount(text, currency)
    except MoneyError as exc:
        raise InvalidAmountError(str(exc)) from exc


async def _sale(services: TerminalServices, request: SaleRequest, pinpad: str | None,
                on_event: EventSink) -> PaymentOutcome:
    async with contextlib.AsyncExitStack() as stack:
        reader = services.card_reader
        if reader is None:
            from terminal.services.cards import open_pcsc_reader

            reader = open_pcsc_reader()
            closer = getattr(reader, "aclose", None)
            if closer is not None:
                stack.push_async_callback(closer)
        pin_entry = offline_pin = None
        if pinpad:
            from terminal.services.cards import pinpad_entry

            settings = services.profile.pinpad
            pad = await stack.enter_async_context(
                pinpad_entry(pinpad, settings.baud, settings.pin_timeout_s))
            pin_entry, offline_pin = pad.online, pad.offline
        manager = await stack.enter_async_context(
            services.payments(pin_entry=pin_entry, offline_pin=offline_pin))
        from terminal.payments.recovery import recover

        await recover(manager)  # a crash's leftovers are finished before a new sale
        return await manager.sale(request, reader, on_event=on_event)


async def _recover(services: TerminalServices) -> RecoveryReport:
    from terminal.payments.recovery import recover

    async with services.payments() as manager:
        return await recover(manager)


def _print_outcome(outcome: PaymentOutcome, as_json: bool, receipt: bool) -> None:
    if as_json:
        data = outcome.as_json()
        data["receipts"] = dict(outcome.receipts)
        print(json.dumps(data, ensure_ascii=False))
        return
    verdict = ("APPROVED OFFLINE" if outcome.approved and outcome.offline
               else "APPROVED" if outcome.approved else "NOT APPROVED")
    print(f"{verdict}  {outcome.amount}  ({outcome.state})")
    rows = [("reason", outcome.reason), ("payment", str(outcome.payment_id)),
            ("card", f"{outcome.masked_pan} {outcome.network}".strip()),
            ("auth code", outcome.auth_code or "-"),
            ("PoP", f"{outcome.pop_status or '-'} {outcome.pop_reference or ''}".strip())]
    for label, value in rows:
        print(f"  {label:<10} {value or '-'}")
    if receipt and "customer" in outcome.receipts:
        print()
        print(outcome.receipts["customer"])


# --- refund, void -------------------------------------------------------------------------


def _refund(ctx: CliContext, args: argparse.Namespace) -> int:
    from terminal.payments.refunds import refund_payment

    amount_text = args.amount
    with ctx.services() as services:

        async def go() -> RefundOutcome:
            async with services.payments() as manager:
                amount: Amount | None = None
                if amount_text is not None:
                    row = services.store.connection.execute(
                        "SELECT currency FROM payments WHERE id = ?",
                        (args.payment_id,)).fetchone()
                    code = row[0] if row else services.profile.default_currency.code
                    amount = _typed_amount(amount_text, services.profile.currency(code))
                return await refund_payment(manager, args.payment_id, amount,
                                            reason=args.reason)

        outcome = asyncio.run(go())
    return _print_refund(outcome, args.json)


def _void(ctx: CliContext, args: argparse.Namespace) -> int:
    from terminal.payments.refunds import void_payment

    with ctx.services() as services:

        async def go() -> RefundOutcome:
            async with services.payments() as manager:
                return await void_payment(manager, args.payment_id)

        outcome = asyncio.run(go())
    return _print_refund(outcome, args.json)


def _print_refund(outcome: RefundOutcome, as_json: bool) -> int:
    if as_json:
        print(json.dumps(outcome.as_json(), ensure_ascii=False))
    else:
        print(f"{outcome.kind} {outcome.state}: {outcome.amount} of payment "
              f"{outcome.payment_id} — {outcome.reason}")
        print(f"  {outcome.kind} id  {outcome.refund_id}")
    return 0 if outcome.state in ("approved", "pending_sync") else 1


# --- tx ---------------------------------------------------------------------------------


def _tx_list(ctx: CliContext, args: argparse.Namespace) -> int:
    from terminal.payments.ledger import list_payments

    with ctx.services() as services:
        rows = list_payments(services.store, state=args.state, last4=args.last4,
                             since=args.since, limit=max(1, min(args.limit, 10_000)))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return 0
    if not rows:
        print("no payments" + (f" in state {args.state}" if args.state else ""))
        return 0
    from terminal.money import currency as currency_of

    for row in rows:
        amount = Amount(int(row["amount_minor"]), currency_of(row["currency"]))
        print(f"{row['created_at'][:19]}  {row['id']}  {row['status']:<20} "
              f"{amount!s:>14}  {row['pan_masked'] or '-':<19} "
              f"{'offline' if row['offline'] else ''}")
    return 0


def _tx_show(ctx: CliContext, args: argparse.Namespace) -> int:
    from terminal.payments.ledger import payment_detail
    from terminal.payments.manager import outcome_from_row
    from terminal.payments.model import UnknownPaymentError
    from terminal.payments.rows import connector_of

    with ctx.services() as services:
        detail = payment_detail(services.store, args.payment_id)
        if detail is None:
            raise UnknownPaymentError(f"no payment {args.payment_id} in this terminal's store "
                                      "(etika tx list shows them)")
        outcome = outcome_from_row(services.store, detail)
    if args.json:
        print(json.dumps({**detail, "receipts": dict(outcome.receipts)}, ensure_ascii=False,
                         default=str))
        return 0
    _print_outcome(outcome, False, False)
    print(f"  {'created':<10} {detail['created_at']}")
    for attempt in detail["attempts"]:
        print(f"  attempt {attempt['attempt_number']}  {connector_of(attempt)}: "
              f"{attempt['status']} {attempt['error_code'] or ''}".rstrip())
    fraud = detail["fraud_check"]
    if fraud:
        print(f"  fraud      {fraud['risk_score']:.2f} {fraud['risk_level']} "
              f"→ {fraud['decision']}")
    for refund in detail["refunds"]:
        print(f"  {refund['kind']:<10} {refund['status']} {refund['amount_minor']} "
              f"{refund['currency']} ({refund['id']})")
    print("  journal:")
    for entry in detail["journal"]:
        print(f"    #{entry['id']} {entry['at'][:19]} {entry['entity']} "
              f"{entry['from'] or ''}→{entry['to'] or entry['action']}")
    if "merchant" in outcome.receipts:
        print()
        print(outcome.receipts["merchant"])
    return 0


def _tx_recover(ctx: CliContext, args: argparse.Namespace) -> int:
    with ctx.services() as services:
        report = asyncio.run(_recover(services))
    if args.json:
        print(json.dumps(report.as_json()))
        return 0
    if not report.changed:
        print("recovery: every payment is already in a final or waiting state")
        return 0
    for name, ids in report.as_json().items():
        if ids:
            print(f"recovery: {len(ids)} {name.replace('_', ' ')}: {', '.join(ids[:5])}"
                  + (" …" if len(ids) > 5 else ""))
    return 0
