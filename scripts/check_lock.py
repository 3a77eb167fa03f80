"""Check that requirements.lock matches pyproject.toml (``make test`` and the suite run it).

The lock (made by ``scripts/lock`` with uv) pins every package the terminal, its extras and
the simulators install, with the SHA-256 of every file, and ``scripts/setup`` installs from
it with ``--require-hashes``. Its first line records the SHA-256 of the dependency
declarations it was made from; this script recomputes that digest, and also checks that
every declared requirement is pinned in the lock at a version its specifier allows. Exit 0
when the lock is current, 1 (saying what to run) when it is not.

``--digest`` prints the digest of the current declarations (``scripts/lock`` writes it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECTS = (ROOT / "pyproject.toml", ROOT / "simulators" / "pyproject.toml")
#: Our own distributions: installed from the work tree, never from the lock.
OURS = frozenset({"etika-terminal", "etika-simulators"})
_HEADER = re.compile(r"^# pyproject-sha256: ([0-9a-f]{64})$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def declarations() -> dict[str, object]:
    """What the lock is made from: each pyproject's requirements, extras and Python."""
    out: dict[str, object] = {}
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text("utf-8"))["project"]
        out[str(path.relative_to(ROOT))] = {
            "requires-python": project.get("requires-python"),
            "dependencies": sorted(project.get("dependencies", [])),
            "optional-dependencies": {extra: sorted(reqs) for extra, reqs in
                                      sorted(project.get("optional-dependencies", {}).items())},
        }
    return out


def digest() -> str:
    return hashlib.sha256(json.dumps(declarations(), sort_keys=True).encode()).hexdigest()


def requirements() -> list[Requirement]:
    reqs: list[Requirement] = []
    for project in declarations().values():
        assert isinstance(project, dict)
        texts = list(project["dependencies"])
        for extra in project["optional-dependencies"].values():
            texts += extra
        reqs += [Requirement(text) for text in texts]
    return [r for r in reqs if canonicalize_name(r.name) not in OURS]


def problems(lock_text: str) -> list[str]:
    """Why the lock does not match the pyprojects (empty when it does)."""
    lines = lock_text.splitlines()
    found: list[str] = []
    header = _HEADER.match(lines[0]) if lines else None
    if header is None:
        found.append("requirements.lock has no '# pyproject-sha256:' first line")
    elif header.group(1) != digest():
        found.append("pyproject.toml's dependencies changed since requirements.lock was made")
    pins = {canonicalize_name(m.group(1)): Version(m.group(2))
            for m in map(_PIN.match, lines) if m}
    for requirement in requirements():
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            found.append(f"{requirement.name} is not pinned in requirements.lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            found.append(f"{requirement.name}=={pinned} in requirements.lock does not satisfy "
                         f"{requirement}")
    if not any("--hash=sha256:" in line for line in lines):
        found.append("requirements.lock carries no hashes")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digest", action="store_true",
                        help="print the digest of the current dependency declarations")
    args = parser.parse_args(argv)
    if args.digest:
        print(digest())
        return 0
    try:
        text = LOCK.read_text("utf-8")
    except FileNotFoundError:
        text = ""
    found = problems(text)
    if found:
        for problem in found:
            print(f"check_lock: {problem}", file=sys.stderr)
        print("check_lock: run scripts/lock and commit requirements.lock", file=sys.stderr)
        return 1
    print("check_lock: requirements.lock matches pyproject.toml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
