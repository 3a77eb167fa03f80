"""What every ``etika`` subcommand receives: the chosen profile and data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from drivers.base import CardReader
    from terminal.profile import Profile
    from terminal.services import TerminalServices

__all__ = ["CliContext", "ServicesFactory", "default_config_root"]


class ServicesFactory(Protocol):
    """Builds the services of one command for ``ctx``; a command injects at most the card
    reader it opened (a simulated card, the demo's shelf)."""

    def __call__(self, ctx: CliContext, *,
                 card_reader: CardReader | None = None) -> TerminalServices: ...


def default_config_root() -> Path:
    """``firmware-config/`` of this checkout, or ``ETIKA_CONFIG_ROOT`` when set."""
    env = os.environ.get("ETIKA_CONFIG_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "firmware-config"


@dataclass
class CliContext:
    """The global options, resolved; subcommands load what they need from it lazily."""

    profile_name: str
    data_dir: Path
    json_output: bool = False
    #: Builds the services a command uses; tests hand a factory that injects doubles
    #: (``main(argv, services_factory=…)``) instead of patching the command modules.
    services_factory: ServicesFactory | None = field(default=None, repr=False)
    _profile: Profile | None = field(default=None, repr=False)

    @property
    def profile_dir(self) -> Path:
        """A profile is a name under ``firmware-config/`` or a path to a profile directory."""
        candidate = Path(self.profile_name)
        if candidate.is_dir() or os.sep in self.profile_name:
            return candidate
        return default_config_root() / self.profile_name

    def profile(self) -> Profile:
        """The validated profile; a broken one raises ``ConfigError`` and nothing starts."""
        if self._profile is None:
            from terminal.profile import load_profile

            self._profile = load_profile(self.profile_dir)
        return self._profile

    def services(self, *, card_reader: CardReader | None = None) -> TerminalServices:
        """The terminal's services for this profile and data dir (DESIGN §2): commands call
        these and build no connector, worker, key store or reader themselves."""
        if self.services_factory is not None:
            return self.services_factory(self, card_reader=card_reader)
        from terminal.services import TerminalServices

        return TerminalServices(self.profile(), self.data_dir, card_reader=card_reader)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "etika.db"

    def require_store(self) -> Path:
        """The store's path, once it is known to exist. Only ``hsm init``, ``db init`` and
        ``scripts/setup`` create a store; every other command refuses a data dir without
        one (a mistyped ``--data-dir`` would otherwise show an empty terminal)."""
        if self.database_path.exists():
            return self.database_path
        from terminal.errors import NoStoreError

        where = ("does not exist" if not self.data_dir.exists()
                 else "has no store (etika.db)")
        raise NoStoreError(
            f"data directory {self.data_dir} {where}: check --data-dir / ETIKA_DATA_DIR; to "
            f"set up a new terminal there run `etika --data-dir {self.data_dir} hsm init` "
            "(scripts/setup does)", data_dir=str(self.data_dir))

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
