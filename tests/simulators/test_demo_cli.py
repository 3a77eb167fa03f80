"""``etika demo``'s own options: a mistake is a one-line usage error (exit 2), before any
simulator starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminal.cli.main import main


@pytest.mark.parametrize(
    ("argv",                                    "message"),
    [
        (["--transactions", "0"],               "argument --transactions: 0 is not between"),
        (["--transactions", "9"],               "argument --transactions: 9 is not between"),
        (["--transactions", "abc"],             "argument --transactions: 'abc' is not a whole"),
        (["--transactions", "100001"],          "argument --transactions: 100001 is not"),
    ],
)
def test_a_bad_transactions_count_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A step count out of 10..100000 is refused, not silently run as another number."""
    with pytest.raises(SystemExit) as raised:
        main(["--data-dir", str(tmp_path), "demo", "--headless", *argv])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_a_work_dir_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--work-dir naming a file ends in one line naming it (exit 2), not an internal error."""
    a_file = tmp_path / "summary.json"
    a_file.write_text("{}")
    status = main(["--data-dir", str(tmp_path), "demo", "--headless", "--transactions", "10",
                   "--work-dir", str(a_file)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"etika: error: --work-dir {a_file}:") and "Traceback" not in err
