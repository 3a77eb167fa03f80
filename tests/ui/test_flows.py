"""Pilot tests of the counter's flows over the in-memory services."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from ui.app import CounterApp
from ui.fake import FakeCounterServices, ScriptedSale
from ui.screens import (
    ChooseApplicationDialog,
    DetailScreen,
    EndOfDayScreen,
    HistoryScreen,
    PresentCardScreen,
    ResultScreen,
    SaleScreen,
)
from ui.screens.confirm import ConfirmDialog

from .conftest import SIZE, counter_app


def text(app: CounterApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def settle(pilot: Pilot[None], app: CounterApp, screen: type) -> None:
    """Let messages flow until ``screen`` is on top (no clock involved)."""
    for _ in range(200):
        await pilot.pause()
        if isinstance(app.screen, screen):
            await pilot.pause()
            return
    raise AssertionError(f"{screen.__name__} never showed; on top: {app.screen!r}")


async def charge(pilot: Pilot[None], app: CounterApp, amount: str) -> None:
    await pilot.press(*amount)
    await pilot.press("enter")


async def test_approved_sale_shows_accepted_and_prints_both_copies() -> None:
    """An approved sale ends on ACCEPTÉ with the receipt, and both copies are printed."""
    fake = FakeCounterServices(sales=[ScriptedSale()])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "125,50")
        await settle(pilot, app, ResultScreen)
        assert "ACCEPTÉ" in text(app, "#verdict")
        assert "125,50 MAD" in text(app, "#verdict")
        assert "TICKET CLIENT" in text(app, "#receipt")
        for _ in range(20):
            await pilot.pause()
        assert sorted(copy for copy, _ in fake.printed) == ["customer", "merchant"]


async def test_decline_shows_the_reason_in_words() -> None:
    """A declined sale says REFUSÉ and why, never only a code."""
    fake = FakeCounterServices(sales=[ScriptedSale(state="financial_declined",
                                                   reason="code PIN erroné")])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "40")
        await settle(pilot, app, ResultScreen)
        assert "REFUSÉ" in text(app, "#verdict")
        assert text(app, "#reason") == "code PIN erroné"


async def test_approved_offline_has_its_own_verdict_and_next_step() -> None:
    """An offline approval is shown as such, with what happens next."""
    fake = FakeCounterServices(sales=[ScriptedSale(
        offline=True, reason="approved offline within the floor limit",
        events=(("card_in", "r"), ("online", "unreachable")))])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "25")
        await settle(pilot, app, ResultScreen)
        assert "ACCEPTÉ HORS LIGNE" in text(app, "#verdict")
        assert "banque sera informée" in text(app, "#next-step")
        assert app.screen.query_one("#verdict").has_class("approved_offline")


async def test_pop_pending_is_shown_apart_from_approved() -> None:
    """A sale approved with its PoP record still pending says so, with its own colour."""
    fake = FakeCounterServices(sales=[ScriptedSale(state="pop_deferred", pop_status="pending")])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "60")
        await settle(pilot, app, ResultScreen)
        assert "PoP EN ATTENTE" in text(app, "#verdict")
        assert app.screen.query_one("#verdict").has_class("pop_pending")


async def test_pop_refused_after_approval_is_to_reconcile_not_declined() -> None:
    """A sale the bank approved but whose PoP record was refused is not shown as declined."""
    fake = FakeCounterServices(sales=[ScriptedSale(state="needs_reconciliation",
                                                   reason="PoP refused the record")])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "60")
        await settle(pilot, app, ResultScreen)
        assert "À RAPPROCHER" in text(app, "#verdict")
        assert "REFUSÉ" not in text(app, "#verdict")


async def test_application_choice_asks_and_uses_the_chosen_one() -> None:
    """A card with two applications opens the choice; key 2 picks the second."""
    script = ScriptedSale(applications=("VISA CREDIT", "CMI DOMESTIQUE"))
    fake = FakeCounterServices(sales=[script])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "300")
        await settle(pilot, app, ChooseApplicationDialog)
        await pilot.press("2")
        await settle(pilot, app, ResultScreen)
        assert script.chosen == "CMI DOMESTIQUE"


async def test_cancel_during_pin_entry_ends_cancelled_and_records_it() -> None:
    """Échap while the PIN pad waits cancels the sale: ANNULÉ, and the payment is kept
    as cancelled."""
    hold = asyncio.Event()
    fake = FakeCounterServices(sales=[ScriptedSale(
        events=(("card_in", "r"), ("pin", "prompt")), hold=hold)])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "75")
        await settle(pilot, app, PresentCardScreen)
        for _ in range(10):
            await pilot.pause()
        assert "pavé PIN" in text(app, "#step")
        await pilot.press("escape")
        await settle(pilot, app, ResultScreen)
        assert "ANNULÉ" in text(app, "#verdict")
        assert [p.outcome.state for p in fake.payments] == ["cancelled"]


async def test_card_removed_too_early_is_one_clear_line() -> None:
    """A card pulled out mid-way is said in one line, and the sale ends not approved."""
    hold = asyncio.Event()
    fake = FakeCounterServices(sales=[ScriptedSale(
        state="cancelled", reason="carte retirée trop tôt",
        events=(("card_in", "r"), ("removed", "")), hold=hold)])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "75")
        await settle(pilot, app, PresentCardScreen)
        for _ in range(10):
            await pilot.pause()
        assert "retirée trop tôt" in text(app, "#step")
        hold.set()
        await settle(pilot, app, ResultScreen)
        assert "ANNULÉ" in text(app, "#verdict")


async def test_ui_answers_keys_while_a_sale_waits_on_a_slow_psp() -> None:
    """While the bank has not answered, the screen still takes key presses (no freeze)."""
    hold = asyncio.Event()
    fake = FakeCounterServices(sales=[ScriptedSale(
        events=(("card_in", "r"), ("online", "slow-psp")), hold=hold)])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "99")
        await settle(pilot, app, PresentCardScreen)
        for _ in range(10):
            await pilot.pause()
        assert "banque" in text(app, "#step")
        await pilot.press("f2")  # a binding of the sale screen underneath: ignored here
        await pilot.press("escape")  # the cancel key is handled while the PSP is silent
        await settle(pilot, app, ResultScreen)
        assert not hold.is_set()
        assert "ANNULÉ" in text(app, "#verdict")


async def sale_then_history(pilot: Pilot[None], app: CounterApp) -> None:
    await charge(pilot, app, "125,50")
    await settle(pilot, app, ResultScreen)
    await pilot.press("enter")
    await settle(pilot, app, SaleScreen)
    await pilot.press("f3")
    await settle(pilot, app, HistoryScreen)
    for _ in range(10):
        await pilot.pause()


async def test_refund_after_confirmation() -> None:
    """From a payment's detail, F4 asks to confirm, then refunds what is left."""
    fake = FakeCounterServices(sales=[ScriptedSale()])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await sale_then_history(pilot, app)
        app.screen.query_one(DataTable).focus()
        await pilot.press("enter")
        await settle(pilot, app, DetailScreen)
        for _ in range(10):
            await pilot.pause()
        await pilot.press("f4")
        await settle(pilot, app, ConfirmDialog)
        assert app.screen.query_one("#confirm-amount", Input).value == "125,50"
        await pilot.press("enter")
        await settle(pilot, app, DetailScreen)
        for _ in range(20):
            await pilot.pause()
        assert fake.payments[0].refunded_minor == 12550
        assert "refund approved" in text(app, "#detail-message")


async def test_void_needs_confirmation_and_refusal_changes_nothing() -> None:
    """F8 asks first: "n" leaves the payment alone, "o" voids it."""
    fake = FakeCounterServices(sales=[ScriptedSale()])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await sale_then_history(pilot, app)
        app.screen.query_one(DataTable).focus()
        await pilot.press("enter")
        await settle(pilot, app, DetailScreen)
        for _ in range(10):
            await pilot.pause()
        await pilot.press("f8")
        await settle(pilot, app, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot, app, DetailScreen)
        assert fake.payments[0].outcome.state == "completed"
        await pilot.press("f8")
        await settle(pilot, app, ConfirmDialog)
        await pilot.press("o")
        await settle(pilot, app, DetailScreen)
        for _ in range(20):
            await pilot.pause()
        assert fake.payments[0].outcome.state == "voided"


async def test_history_search_by_last4_and_state() -> None:
    """The history filters by card last 4 and by state."""
    fake = FakeCounterServices(sales=[
        ScriptedSale(), ScriptedSale(masked_pan="541333******4111", network="MASTERCARD"),
        ScriptedSale(state="financial_declined", reason="refusé")])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(3):
            await charge(pilot, app, "10")
            await settle(pilot, app, ResultScreen)
            await pilot.press("enter")
            await settle(pilot, app, SaleScreen)
        await pilot.press("f3")
        await settle(pilot, app, HistoryScreen)
        for _ in range(10):
            await pilot.pause()
        history = app.screen
        assert isinstance(history, HistoryScreen)
        assert len(history.row_ids) == 3
        history.query_one("#f-last4", Input).value = "4111"
        history.action_search()
        for _ in range(10):
            await pilot.pause()
        assert history.row_ids == [str(fake.payments[1].outcome.payment_id)]
        history.query_one("#f-last4", Input).value = ""
        history.query_one("#f-state").value = "financial_declined"  # type: ignore[attr-defined]
        for _ in range(10):
            await pilot.pause()
        assert history.row_ids == [str(fake.payments[2].outcome.payment_id)]


async def test_history_refuses_a_date_it_cannot_read() -> None:
    """A date filter that is not a date is refused with the expected form."""
    app = counter_app(FakeCounterServices())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await settle(pilot, app, HistoryScreen)
        app.screen.query_one("#f-since", Input).value = "hier"
        app.screen.action_search()  # type: ignore[attr-defined]
        await pilot.pause()
        assert "2026-12-03" in text(app, "#history-error")


async def test_end_of_day_shows_totals_per_network_and_prints() -> None:
    """F10 then Entrée closes the day: totals per currency and network, queued, printed."""
    fake = FakeCounterServices(sales=[
        ScriptedSale(), ScriptedSale(masked_pan="541333******4111", network="MASTERCARD")])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        for amount in ("10", "20"):
            await charge(pilot, app, amount)
            await settle(pilot, app, ResultScreen)
            await pilot.press("enter")
            await settle(pilot, app, SaleScreen)
        await pilot.press("f10")
        await settle(pilot, app, EndOfDayScreen)
        await pilot.press("enter")
        for _ in range(20):
            await pilot.pause()
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [(r[1], r[2]) for r in rows] == [("MASTERCARD", "1"), ("VISA", "1")]
        assert fake.end_of_days == [fake.now.date()]
        assert "imprimé" in text(app, "#eod-status")


async def test_printer_out_of_paper_is_shown_and_the_sale_still_completes() -> None:
    """With no paper the result says the receipt was not printed; the sale is approved."""
    fake = FakeCounterServices(sales=[ScriptedSale()], printer_fault="out of paper")
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await charge(pilot, app, "125,50")
        await settle(pilot, app, ResultScreen)
        for _ in range(20):
            await pilot.pause()
        assert "ACCEPTÉ" in text(app, "#verdict")
        assert "non imprimé : out of paper" in text(app, "#print-status")
        assert fake.payments[0].outcome.state == "completed"


async def test_foreign_currency_shows_the_converted_amount_and_rate_age() -> None:
    """EUR shows the MAD charged, the rate and its age; the sale is charged in MAD."""
    fake = FakeCounterServices(sales=[ScriptedSale()])
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await pilot.press("1", "0")
        await pilot.pause()
        line = text(app, "#fx")
        assert "1 EUR = 10,8350 MAD" in line and "il y a 5 h" in line
        assert "108,35 MAD" in line
        await pilot.press("enter")
        await settle(pilot, app, ResultScreen)
        assert fake.payments[0].outcome.amount.minor == 10835


async def test_stale_rate_is_refused_with_the_reason() -> None:
    """A USD rate older than its maximum age is refused, saying how old it is."""
    fake = FakeCounterServices()
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2", "f2")
        await pilot.press("1", "0")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SaleScreen)
        assert "3 days old" in text(app, "#sale-error")
        assert fake.payments == []


async def test_english_labels_follow_the_locale() -> None:
    """With locale en the screens speak English."""
    fake = FakeCounterServices(sales=[ScriptedSale()], locale="en")
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        assert text(app, "#amount-label") == "Amount"
        await charge(pilot, app, "1250")
        await settle(pilot, app, ResultScreen)
        assert "APPROVED  1,250.00 MAD" in text(app, "#verdict")
