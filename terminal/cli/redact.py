"""Keep card numbers typed on the command line out of the CLI's own messages.

argparse repeats the offending argument in its usage errors (``invalid choice:
'4111111111111111'``); a PAN typed by mistake as an argument would be printed back to the
screen, the shell's scrollback and any log collecting stderr (DESIGN §5). Any run of 13 to
19 digits (also in groups of digits separated by a space or a dash) is removed, Luhn-valid
or not: a mistyped card number is still a card number.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_card_numbers"]

REDACTED = "[card number removed]"

_CARD_NUMBER = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def redact_card_numbers(text: str) -> str:
    """``text`` with every 13-19 digit run replaced by :data:`REDACTED`."""
    return _CARD_NUMBER.sub(REDACTED, text)
