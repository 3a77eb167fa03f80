"""Packaging: the terminal is its own distribution, without the simulators; command groups
are entry points imported only when run (issue #10 item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" \
    / "site-packages"

# What `etika --help` must not load: every command group, the simulators, the platform's
# web stack, the UI, and the heavy libraries only some commands use.
_NOT_FOR_HELP = ("simulators", "fastapi", "uvicorn", "starlette", "psycopg", "textual",
                 "pyemv", "psec", "rich", "pydantic", "structlog", "smartcard", "pkcs11",
                 "aiomqtt", "httpx", "edge_sync", "hsm", "drivers", "ui",
                 "terminal.profile", "terminal.store", "terminal.emv")


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import json, sys\n"
        "from terminal.cli.main import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return set(json.loads(out.stdout))


def test_help_imports_no_command_group_nor_heavy_library() -> None:
    """`etika --help` lists every group without importing any of them (fast start)."""
    loaded = _modules_after(["--help"])
    offending = sorted(m for m in loaded
                       if any(m == p or m.startswith(p + ".") for p in _NOT_FOR_HELP)
                       or m.startswith("terminal.cli.cmd_"))
    assert offending == []


def test_a_group_imports_only_itself() -> None:
    """`etika config --help` imports the config group and no other group."""
    loaded = _modules_after(["config", "--help"])
    assert "terminal.cli.cmd_config" in loaded
    others = sorted(m for m in loaded if m.startswith("terminal.cli.cmd_")
                    and m != "terminal.cli.cmd_config")
    assert others == []
    assert not any(m.startswith(("simulators", "edge_sync.platform")) for m in loaded)


def test_simulators_distribution_lists_every_package() -> None:
    """simulators/pyproject.toml names every package under simulators/ (none left out of
    its wheel)."""
    config = tomllib.loads((REPO / "simulators" / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("simulators", *init.parent.relative_to(REPO / "simulators").parts))
        for init in (REPO / "simulators").rglob("__init__.py")
        if "__pycache__" not in init.parts and "build" not in init.parts
    }
    assert found - listed == set()


def test_terminal_distribution_leaves_the_simulators_out() -> None:
    """The terminal's pyproject packages no simulator and registers no `sim` group."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(p.startswith("simulators") for p in include)
    assert "sim" not in config["project"]["entry-points"]["etika.commands"]
    assert not any("pyemv" in d or "psec" in d or "fastapi" in d or "textual" in d
                   for d in config["project"]["dependencies"])


def _deps_dir(tmp_path: Path) -> Path:
    """This venv's third-party libraries, without any distribution of ours."""
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in VENV_SITE.iterdir():
        name = entry.name.lower()
        if name.startswith(("etika", "__editable__", "_distutils_hack", "pip", "setuptools")) \
                or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


@pytest.mark.slow
def test_terminal_installs_and_runs_without_the_simulators(tmp_path: Path) -> None:
    """Built and installed alone into a fresh venv, the terminal's `etika --help` and
    `etika card read` run; `--simulated` says the simulators are not installed."""
    import shutil

    # Built from a copy, so that setuptools' build/ never lands (stale) in the checkout.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", "var", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "tests",
        "bench"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("etika_terminal-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / VENV_SITE.parent.name / "site-packages"
    (site / "etika-deps.pth").write_text(f"{_deps_dir(tmp_path)}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["ETIKA_CONFIG_ROOT"] = str(REPO / "firmware-config")

    def etika(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / "etika"), "--data-dir", str(tmp_path / "var"),
                               *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)

    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import simulators"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert probe.returncode != 0, "the simulators leaked into the terminal's install"

    helped = etika("--help")
    assert helped.returncode == 0, helped.stderr
    assert " card " in helped.stdout and " sim " not in helped.stdout

    read = etika("card", "read", "--timeout", "0.5")
    assert "Traceback" not in read.stderr and "internal error" not in read.stderr, read.stderr
    assert read.returncode in (0, 1), read.stderr

    simulated = etika("card", "read", "--simulated", "visa-credit")
    assert simulated.returncode == 2, simulated.stderr
    assert "simulators" in simulated.stderr and "not installed" in simulated.stderr


# The profile loader checks aids.toml's default TDOL/DDOL with the kernel's DOL codec: these
# codec modules (not the kernel) may load with any command that loads the profile.
PROFILE_CODECS = frozenset({"terminal.emv", "terminal.emv.dol", "terminal.emv.errors",
                            "terminal.emv.tags", "terminal.emv.tlv"})


@pytest.mark.parametrize(("argv", "not_loaded"), [
    (["db", "status"],
     ("edge_sync.connectors", "hsm", "pkcs11", "pydantic", "terminal.emv", "terminal.payments")),
    (["hsm", "status"],
     ("edge_sync.connectors", "terminal.payments", "terminal.emv", "fastapi")),
])
def test_common_commands_import_only_what_they_use(
    argv: list[str], not_loaded: tuple[str, ...], tmp_path: Path
) -> None:
    """#16.11: `db status` and `hsm status` start fast: neither imports the PSP
    connectors, the payments or libraries it does not use."""
    from terminal.store import Store

    Store.open(tmp_path / "etika.db").close()
    loaded = _modules_after(["--data-dir", str(tmp_path), *argv])
    allowed = PROFILE_CODECS if argv[0] == "hsm" else frozenset()
    offending = sorted(m for m in loaded - allowed
                       if any(m == p or m.startswith(p + ".") for p in not_loaded))
    assert offending == []
