"""``etika demo``: the counter UI on a TTY, or ``--headless`` the scripted mix as JSON."""

from __future__ import annotations

import argparse
import sys

from etika_argtypes import CommandGroups
from terminal.cli.context import CliContext

__all__ = ["register"]


#: The headless mix needs one full cycle of its steps; more than this is not a demo.
MIN_STEPS, MAX_STEPS = 10, 100_000


def _steps(text: str) -> int:
    """``--transactions``: out of range is a usage error, not silently another number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not MIN_STEPS <= value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"{value} is not between {MIN_STEPS} and {MAX_STEPS}")
    return value


def register(groups: CommandGroups) -> None:
    demo = groups.add_parser(
        "demo", help="the counter with every other side simulated (UI, or --headless JSON)",
        description="Start every simulator on loopback and open the counter UI with a card "
        "shelf; or, with --headless, run a scripted mix of payments and print one summary "
        "(final states, latency, outbox depth after the final sync, and the totals of the "
        "terminal, the platform, the PSP simulator and the PoP ledger side by side). Exit "
        "status 0 when the outbox drained and the four totals agree.")
    demo.add_argument("--headless", action="store_true",
                      help="no UI: the scripted mix (default when stdout is not a TTY)")
    demo.add_argument("--transactions", type=_steps, default=60, metavar="N",
                      help=f"how many scripted steps in the headless mix, {MIN_STEPS} to "
                      f"{MAX_STEPS} (default 60)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--cards", default="auto", metavar="MODE",
                      help="headless cards: auto (pcscd + vpcd when pcscd can run, in-process "
                           "otherwise; the default), pcscd (required), in-process (never "
                           "pcscd: when pcscd is held by something else)")
    demo.add_argument("--work-dir", metavar="DIR",
                      help="keep what the headless run wrote (databases, PoP ledger) in DIR "
                           "(default: a temporary directory, removed)")
    demo.set_defaults(handler=_demo)


def _demo(ctx: CliContext, args: argparse.Namespace) -> int:
    import asyncio
    import json
    import tempfile
    import warnings
    from pathlib import Path

    # pyemv (the simulated issuer's cryptography) uses cryptography's deprecated TDES path.
    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    headless = args.headless or not sys.stdout.isatty()
    if not headless:
        from simulators.demo.interactive import run_interactive

        return run_interactive(ctx)
    from simulators.demo.headless import CARD_MODES, run_headless

    if args.cards not in CARD_MODES:  # one line, exit 2 (argparse choices would add usage)
        print(f"etika: error: --cards {args.cards!r}: use one of {', '.join(CARD_MODES)}",
              file=sys.stderr)
        return 2
    n = args.transactions
    if args.work_dir:
        work = Path(args.work_dir)
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a usage mistake (exit 2), not an internal error
            print(f"etika: error: --work-dir {work}: cannot use it as a directory "
                  f"({exc.strerror or exc}); give a directory path", file=sys.stderr)
            return 2
        summary = asyncio.run(run_headless(n, ctx.profile_dir, work, cards=args.cards))
    else:
        with tempfile.TemporaryDirectory(prefix="etika-demo-") as tmp:
            summary = asyncio.run(run_headless(n, ctx.profile_dir, Path(tmp),
                                                  cards=args.cards))
    ok = summary["outbox_depth_after_sync"] == 0 and summary["totals_match"]
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        from rich.console import Console

        Console().print_json(json.dumps(summary))
    return 0 if ok else 1
