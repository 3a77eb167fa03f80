"""Atheris harness: a hostile REST PSP answering a Stripe- or PayPal-like connector.

One input is one operation through the router (authorise — with its search and reversal
when the answer is lost —, advice, complete, reverse, refund, status, echo) against the
answers :mod:`simulators.psp.hostile` reads from it: faults, any status, raw bytes, deep
nesting, or an honest answer of either API with values replaced by any JSON value.

Allowed: a ``PspResponse`` the terminal can store and use, or one of the connectors' own
errors (``PspError``) whose message and queued reversal can be stored
(:func:`simulators.psp.hostile.problems` finds nothing). Anything else — ``KeyError``,
``TypeError``, ``UnicodeEncodeError``, ``RecursionError``, an id that would steer a URL —
is a crash. ``python fuzz/fuzz_psp_rest.py -max_total_time=300`` (``make fuzz``).
"""

from __future__ import annotations

import asyncio
import sys
import warnings

import atheris

warnings.filterwarnings("ignore")

# Only the connectors are instrumented: httpx and the scenario are the fuzzer's tools.
with atheris.instrument_imports(include=["edge_sync.connectors"]):
    from edge_sync.connectors.errors import PspError
    from simulators.psp.hostile import problems, run_scenario


def check(data: bytes) -> None:
    """One input: one operation; a usable answer or a storable ``PspError``, nothing else."""
    try:
        outcome = asyncio.run(run_scenario(data))
    except PspError as exc:
        found = problems(exc)
    else:
        found = problems(outcome)
    if found:
        raise AssertionError(f"an outcome the terminal cannot use: {found}")


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
