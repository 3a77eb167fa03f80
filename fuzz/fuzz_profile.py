"""Atheris harness: the profile loader on mutated copies of the shipped profiles.

The input picks a shipped profile (``firmware-config/*``), one of its files (or
``crl.toml``) and up to four mutations (a value replaced by a hostile class or fuzzed
text, a line deleted, duplicated or inserted, a value nested deep, text spliced in; see
``tests/fuzz/profile_mutations.py``). Allowed: a profile that passes ``check_usable``
(its URLs parse with httpx, its rates convert...), or ``ConfigError`` naming the file.
Anything else is a crash. ``python fuzz/fuzz_profile.py -max_total_time=60`` (``make fuzz``).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

warnings.filterwarnings("ignore")
# The mutations and the usability check are shared with the hypothesis target.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only the loader and its models are instrumented (pydantic-core is compiled; instrumenting
# tomllib, httpx and cryptography slows each run down for coverage the mutations give).
with atheris.instrument_imports(include=["terminal.profile", "terminal.profile_crl"]):
    from terminal.errors import ConfigError
    from terminal.profile import PROFILE_FILES, load_profile
    from tests.fuzz.profile_mutations import (
        HOSTILE_VALUES,
        PROFILE_DIRS,
        check_usable,
        mutate,
        toml_string,
    )

_FILES = (*sorted(PROFILE_FILES), "crl.toml")
_WORK = Path(tempfile.mkdtemp(prefix="etika-fuzz-profile-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
#: One working copy per shipped profile; each run rewrites one file and puts it back.
_COPIES = [Path(shutil.copytree(source, _WORK / source.name)) for source in PROFILE_DIRS]


def _original(directory: Path, filename: str) -> bytes | None:
    path = PROFILE_DIRS[_COPIES.index(directory)] / filename
    return path.read_bytes() if path.exists() else None


def plan(data: bytes) -> tuple[Path, str, list[tuple[int, int, str]]]:
    """What ``data`` asks for: the working copy, the file and its mutations."""
    fdp = atheris.FuzzedDataProvider(data)
    directory = _COPIES[fdp.ConsumeIntInRange(0, len(_COPIES) - 1)]
    filename = _FILES[fdp.ConsumeIntInRange(0, len(_FILES) - 1)]
    mutations = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        kind = fdp.ConsumeIntInRange(0, 5)
        index = fdp.ConsumeIntInRange(0, 1 << 16)
        form = fdp.ConsumeIntInRange(0, 3)
        if form == 0:
            payload = HOSTILE_VALUES[fdp.ConsumeIntInRange(0, len(HOSTILE_VALUES) - 1)]
        elif form == 1:  # a TOML integer of up to 80 bits
            payload = str(fdp.ConsumeInt(10))
        else:  # fuzzed text, as a TOML string or raw
            text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
            payload = toml_string(text) if form == 2 else text
        mutations.append((kind, index, payload))
    return directory, filename, mutations


def check(data: bytes) -> None:
    """One input: mutate one file of one shipped profile and load it."""
    directory, filename, mutations = plan(data)
    original = _original(directory, filename)
    text = original.decode("utf-8") if original is not None else ""
    for kind, index, payload in mutations:
        text = mutate(text, kind, index, payload)
    path = directory / filename
    path.write_bytes(text.encode("utf-8"))
    try:
        profile = load_profile(directory)
    except ConfigError as exc:
        if not exc.problems or not all(p.startswith(f"{directory}/") for p in exc.problems):
            raise AssertionError(f"a problem without its file: {exc.problems}") from exc
        return
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_bytes(original)
    check_usable(profile)


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
