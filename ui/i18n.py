"""The counter's words in French and English, and amounts written the local way.

The profile's ``[terminal] locale`` picks the language (French by default, the Moroccan
profile's). A missing key falls back to English, then to the key itself, so a new label
never crashes a screen. Amounts are shown as cashiers write them: ``1 250,00 MAD`` in
French, ``1,250.00 MAD`` in English.
"""

from __future__ import annotations

from terminal.money import Amount

__all__ = ["LOCALES", "Labels", "format_amount", "labels_for", "state_label"]

LOCALES = ("fr", "en")

_EN: dict[str, str] = {
    "amount": "Amount",
    "charge": "Charge",
    "currency": "currency",
    "history": "history",
    "refund": "refund",
    "diagnostics": "diagnostics",
    "end_of_day": "end of day",
    "quit": "quit",
    "new_sale": "new sale",
    "cancel": "cancel",
    "back": "back",
    "contactless": "contactless",
    "rate": "1 {base} = {rate} {quote} · rate of {time} ({age} old)",
    "charged_as": "charged {amount}",
    "online": "online",
    "offline": "offline",
    "unknown": "?",
    "queue": "queue {depth}",
    "queue_oldest": "queue {depth} · oldest {age}",
    "last_sync": "last sync {time}",
    "never": "never",
    "reader": "reader",
    "reader_no_reader": "no reader",
    "reader_waiting": "waiting",
    "reader_card_in": "card in",
    "pinpad": "PIN pad",
    "key_store": "HSM",
    "printer": "printer",
    "present_card": "Present, insert or tap the card",
    "waiting_reader": "waiting for the reader…",
    "card_in": "card in: {detail}",
    "reading": "reading the card…",
    "pin": "enter the PIN on the PIN pad…",
    "pin_cancelled": "PIN entry cancelled on the PIN pad",
    "pin_timeout": "PIN entry timed out",
    "pin_wrong": "wrong PIN, {detail}",
    "online_wait": "asking the bank ({detail})…",
    "finalising": "finishing with the card…",
    "removed_early": "card removed too early: insert it again",
    "tap_again": "tap the card again",
    "since": "for {seconds} s",
    "choose_app": "Which application? (the customer chooses)",
    "approved": "APPROVED",
    "approved_offline": "APPROVED OFFLINE",
    "approved_offline_next": "the bank will be told when the terminal is back online",
    "pop_pending": "APPROVED · PoP PENDING",
    "pop_pending_next": "the PoP record is kept and sent again; nothing to do",
    "to_reconcile": "APPROVED · TO RECONCILE",
    "to_reconcile_next": "the bank approved; the PoP back end refused its record: the "
                         "platform is alerted, keep the receipt",
    "declined": "DECLINED",
    "cancelled": "CANCELLED",
    "cancelled_next": "nothing was charged; a reversal is queued if the bank had approved",
    "auth_code": "authorisation {code}",
    "customer_receipt": "customer receipt",
    "merchant_receipt": "merchant receipt",
    "printed": "receipt printed",
    "print_failed": "receipt not printed: {reason}",
    "search": "search",
    "state": "state",
    "last4": "last 4",
    "since_date": "from (YYYY-MM-DD)",
    "until_date": "to (YYYY-MM-DD)",
    "min_amount": "min amount",
    "max_amount": "max amount",
    "no_payments": "no payments match",
    "date": "date",
    "card": "card",
    "detail": "detail",
    "void": "void",
    "reprint": "reprint",
    "attempts": "attempts",
    "fraud": "fraud check",
    "pop": "PoP",
    "refunds": "refunds",
    "journal": "journal",
    "confirm_refund": "Refund {amount} of payment {payment}?",
    "confirm_void": "Void payment {payment} ({amount})?",
    "yes": "yes",
    "no": "no",
    "refund_done": "{kind} {state}: {amount} — {reason}",
    "eod_title": "End of day {day}",
    "eod_queued": "totals queued for the platform",
    "eod_not_queued": "totals NOT queued",
    "network": "network",
    "count": "count",
    "total": "total",
    "close_day": "close the day",
    "diag_title": "Diagnostics",
    "refresh": "refresh",
    "section": "section",
    "name": "item",
    "value": "value",
    "working": "working…",
    "error": "error: {message}",
    "busy": "a payment is in progress",
    "zero_amount": "the amount must be above zero",
    "state_completed": "approved",
    "state_pop_deferred": "approved, PoP pending",
    "state_financial_declined": "declined",
    "state_offline_declined": "declined offline",
    "state_cancelled": "cancelled",
    "state_reversed": "reversed",
    "state_reversal_pending": "reversal pending",
    "state_voided": "voided",
    "state_needs_reconciliation": "to reconcile",
    "state_created": "started",
    "state_authorising": "authorising",
}

_FR: dict[str, str] = {
    "amount": "Montant",
    "charge": "Encaisser",
    "currency": "devise",
    "history": "historique",
    "refund": "remboursement",
    "diagnostics": "diagnostic",
    "end_of_day": "clôture",
    "quit": "quitter",
    "new_sale": "nouvelle vente",
    "cancel": "annuler",
    "back": "retour",
    "contactless": "sans contact",
    "rate": "1 {base} = {rate} {quote} · taux de {time} (il y a {age})",
    "charged_as": "débité {amount}",
    "online": "en ligne",
    "offline": "hors ligne",
    "queue": "file {depth}",
    "queue_oldest": "file {depth} · plus ancien {age}",
    "last_sync": "dernière synchro {time}",
    "never": "jamais",
    "reader": "lecteur",
    "reader_no_reader": "aucun lecteur",
    "reader_waiting": "en attente",
    "reader_card_in": "carte insérée",
    "pinpad": "pavé PIN",
    "key_store": "HSM",
    "printer": "imprimante",
    "present_card": "Présentez, insérez ou approchez la carte",
    "waiting_reader": "en attente du lecteur…",
    "card_in": "carte présente : {detail}",
    "reading": "lecture de la carte…",
    "pin": "saisie du code sur le pavé PIN…",
    "pin_cancelled": "saisie du code annulée sur le pavé PIN",
    "pin_timeout": "délai de saisie du code dépassé",
    "pin_wrong": "code PIN erroné, {detail}",
    "online_wait": "demande à la banque ({detail})…",
    "finalising": "fin de l'échange avec la carte…",
    "removed_early": "carte retirée trop tôt : insérez-la à nouveau",
    "tap_again": "approchez la carte à nouveau",
    "since": "depuis {seconds} s",
    "choose_app": "Quelle application ? (le client choisit)",
    "approved": "ACCEPTÉ",
    "approved_offline": "ACCEPTÉ HORS LIGNE",
    "approved_offline_next": "la banque sera informée au retour de la connexion",
    "pop_pending": "ACCEPTÉ · PoP EN ATTENTE",
    "pop_pending_next": "l'enregistrement PoP est conservé et renvoyé ; rien à faire",
    "to_reconcile": "ACCEPTÉ · À RAPPROCHER",
    "to_reconcile_next": "la banque a accepté ; le PoP a refusé l'enregistrement : la "
                         "plateforme est alertée, gardez le ticket",
    "declined": "REFUSÉ",
    "cancelled": "ANNULÉ",
    "cancelled_next": "rien n'a été débité ; une annulation est en file si la banque avait accepté",
    "auth_code": "autorisation {code}",
    "customer_receipt": "reçu client",
    "merchant_receipt": "reçu commerçant",
    "printed": "ticket imprimé",
    "print_failed": "ticket non imprimé : {reason}",
    "search": "rechercher",
    "state": "état",
    "last4": "4 derniers",
    "since_date": "du (AAAA-MM-JJ)",
    "until_date": "au (AAAA-MM-JJ)",
    "min_amount": "montant min",
    "max_amount": "montant max",
    "no_payments": "aucun paiement ne correspond",
    "date": "date",
    "card": "carte",
    "detail": "détail",
    "void": "annulation",
    "reprint": "réimprimer",
    "attempts": "tentatives",
    "fraud": "contrôle fraude",
    "pop": "PoP",
    "refunds": "remboursements",
    "journal": "journal",
    "confirm_refund": "Rembourser {amount} du paiement {payment} ?",
    "confirm_void": "Annuler le paiement {payment} ({amount}) ?",
    "yes": "oui",
    "no": "non",
    "refund_done": "{kind} {state} : {amount} — {reason}",
    "eod_title": "Clôture du {day}",
    "eod_queued": "totaux envoyés à la plateforme (en file)",
    "eod_not_queued": "totaux NON envoyés",
    "network": "réseau",
    "count": "nombre",
    "total": "total",
    "close_day": "clôturer la journée",
    "diag_title": "Diagnostic",
    "refresh": "actualiser",
    "section": "partie",
    "name": "élément",
    "value": "valeur",
    "working": "en cours…",
    "error": "erreur : {message}",
    "busy": "un paiement est en cours",
    "zero_amount": "le montant doit être supérieur à zéro",
    "state_completed": "accepté",
    "state_pop_deferred": "accepté, PoP en attente",
    "state_financial_declined": "refusé",
    "state_offline_declined": "refusé hors ligne",
    "state_cancelled": "annulé",
    "state_reversed": "annulé (reversal)",
    "state_reversal_pending": "annulation en cours",
    "state_voided": "annulé (void)",
    "state_needs_reconciliation": "à rapprocher",
    "state_created": "commencé",
    "state_authorising": "autorisation",
}

_TABLES = {"en": _EN, "fr": _FR}


class Labels:
    """The labels of one locale: ``labels("rate", base="EUR", ...)``."""

    def __init__(self, locale: str) -> None:
        if locale not in _TABLES:
            raise ValueError(f"unknown locale {locale!r}: expected one of {', '.join(LOCALES)}")
        self.locale = locale
        self._table = _TABLES[locale]

    def __call__(self, key: str, **values: object) -> str:
        template = self._table.get(key) or _EN.get(key) or key
        return template.format(**values) if values else template


def state_label(labels: Labels, state: str) -> str:
    """A payment state (DESIGN §6) in words; an unknown one is shown as it is."""
    text = labels(f"state_{state}")
    return state if text == f"state_{state}" else text


def labels_for(locale: str) -> Labels:
    return Labels(locale)


def format_amount(amount: Amount, locale: str) -> str:
    """``1 250,00 MAD`` (fr) or ``1,250.00 MAD`` (en); a whole currency has no decimals."""
    exponent = amount.currency.exponent
    text = f"{amount.decimal:,.{exponent}f}"  # 1,250.00
    if locale == "fr":
        text = text.replace(",", " ").replace(".", ",")
    return f"{text} {amount.currency.code}"
