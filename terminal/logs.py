"""Logging: structlog events as JSON lines in ``<data-dir>/logs/`` and readable console lines.

Every event — ours or a library's through the standard ``logging`` module — passes
:func:`mask_card_data` last before rendering: any Luhn-valid run of 12 digits or more, of
any length (also written in groups, ``4111 1111 1111 1111``), wherever it appears in the
event, including nested values and formatted tracebacks, is replaced by its first six and
last four digits around asterisks (only the last four when it is shorter than 13 digits,
where first six and last four would hide almost nothing). Valid PANs are 13 to 19 digits,
but a malformed or truncated one is still card data. That is a safety net, not a licence:
card data must never be logged in the first place (DESIGN §5).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["FILE_ONLY", "LOG_FILE_NAME", "MIN_MASKED_DIGITS", "configure_logging", "luhn_valid",
           "mask_card_data", "mask_pan_text"]

LOG_FILE_NAME = "etika.jsonl"

#: Shorter digit runs are amounts, counters and dates; from here on a run may be a card number.
MIN_MASKED_DIGITS = 12
# 12 or more digits, optionally in groups separated by one space or dash, not touching other
# digits.
_PAN_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){11,}(?![0-9])")



class _OwnerOnlyFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file readable by its owner only (0600), the rotated ones too."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)

def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B check digit test."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) < MIN_MASKED_DIGITS or not luhn_valid(digits):
        return text
    if len(digits) < 13:
        return "*" * (len(digits) - 4) + digits[-4:]
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def mask_pan_text(text: str) -> str:
    """``text`` with every Luhn-valid run of 12 or more digits masked (module docstring)."""
    return _PAN_CANDIDATE.sub(_mask_match, text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_pan_text(value)
    if isinstance(value, bytes | bytearray):
        return mask_pan_text(bytes(value).decode("latin-1"))
    if (isinstance(value, int) and not isinstance(value, bool)
            and len(str(abs(value))) >= MIN_MASKED_DIGITS):
        masked = mask_pan_text(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_pan_text(str(value))


def mask_card_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask card numbers anywhere in the event (see module docstring)."""
    return {key: _mask_value(value) for key, value in event_dict.items()}


#: Event key that keeps an event out of the console: the CLI logs a bug's traceback with it,
#: so the traceback goes to the log file while the user reads one line.
FILE_ONLY = "file_only"


def _not_file_only(record: logging.LogRecord) -> bool:
    event = record.msg
    return not (isinstance(event, dict) and event.get(FILE_ONLY))


def configure_logging(
    log_dir: Path | None,
    *,
    console: bool = True,
    level: int | str = logging.INFO,
    console_level: int | str = logging.WARNING,
) -> None:
    """Send structlog and stdlib logging to JSON lines in ``log_dir`` and to stderr.

    The file gets ``level`` and up; the console only ``console_level`` and up, so that a
    command's own output stays readable.

    Safe to call again (e.g. in tests): handlers installed by a previous call are replaced.
    """
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        mask_card_data,
    ]
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_etika", False):
            root.removeHandler(handler)
            handler.close()
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(log_dir, 0o700)
        file_handler = _OwnerOnlyFileHandler(
            log_dir / LOG_FILE_NAME, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
        file_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[*final, structlog.processors.JSONRenderer()],
            )
        )
        file_handler._etika = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
    if console:
        console_handler = logging.StreamHandler(sys.stderr)
        console_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[*final, structlog.dev.ConsoleRenderer(colors=False)],
            )
        )
        console_handler.setLevel(console_level)
        console_handler.addFilter(_not_file_only)
        console_handler._etika = True  # type: ignore[attr-defined]
        root.addHandler(console_handler)
    root.setLevel(level)
