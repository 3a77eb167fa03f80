"""The counter's screens and dialogs, one a file."""

from ui.screens.choose_application import ChooseApplicationDialog
from ui.screens.confirm import ConfirmDialog
from ui.screens.detail import DetailScreen
from ui.screens.diagnostics import DiagnosticsScreen
from ui.screens.end_of_day import EndOfDayScreen
from ui.screens.history import HistoryScreen
from ui.screens.present_card import PresentCardScreen
from ui.screens.result import ResultScreen
from ui.screens.sale import SaleScreen

__all__ = [
    "ChooseApplicationDialog",
    "ConfirmDialog",
    "DetailScreen",
    "DiagnosticsScreen",
    "EndOfDayScreen",
    "HistoryScreen",
    "PresentCardScreen",
    "ResultScreen",
    "SaleScreen",
]
