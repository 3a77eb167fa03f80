#!/usr/bin/env python3
"""List the public signatures that cross a package boundary and still say ``Any``.

Issue #10 item 7: between the packages (``terminal``, ``drivers``, ``hsm``, ``edge_sync``,
``ui``, ``simulators``) data has a known shape and says so. This finds every name one of
them imports from another (``from edge_sync.messages import Envelope``, a lazy import inside
a function, ``from terminal.payments import ledger`` then ``ledger.payment_row``), and reads
the signature of what it gets: a function's parameters and return, a class's public
methods and properties (its own and those of its bases in these packages) and its public
annotated fields (a dataclass's or a pydantic model's: its constructor and what it hands
back). Annotations are read as written (the packages postpone evaluation), so ``Any`` is
found by name, as ``Any`` or ``typing.Any``.

Some ``Any`` is by design; :data:`ALLOWED` lists each kind with the reason. Run it with the
project's Python (it imports the packages); it prints one line per hit and exits 1 when
there is any. ``tests/test_any_signatures.py`` runs it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("terminal", "drivers", "hsm", "edge_sync", "ui", "simulators")

_ANY = re.compile(r"\b(?:typing\.)?Any\b")

#: ``Any`` that is allowed, by design. Each entry removes one written form before the check.
ALLOWED: tuple[tuple[re.Pattern[str], str], ...] = (
    # A coroutine's send and yield types are never used: ``Coroutine[Any, Any, T]`` is how
    # typeshed spells "an awaitable made by ``async def`` returning T".
    (re.compile(r"Coroutine\[Any, Any, "), "Coroutine["),
)

#: ``**fields: Any`` on the methods of these classes and their subclasses: the structured
#: fields of an ``EtikaError`` leaf are free-form by design (tag, offset, status word, port:
#: each leaf its own, kept for logs and ``--json``). Log calls take ``**kw: Any`` too, but
#: they are structlog's loggers, outside these packages, so never visited here.
ALLOWED_VAR_KEYWORD_OWNERS = ("etika_errors.EtikaError",)


@dataclass(frozen=True)
class Hit:
    where: str  # module.qualname
    part: str  # parameter name, "return", or field name
    annotation: str

    def __str__(self) -> str:
        return f"{self.where}: {self.part}: {self.annotation}"


def _package(module: str) -> str:
    return module.split(".", 1)[0]


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _resolve(level: int, name: str | None, importer: str, is_pkg: bool) -> str:
    """The absolute module of ``from <level dots><name> import ...`` in ``importer``."""
    if not level:
        return name or ""
    base = importer.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def cross_package_imports(root: Path = REPO) -> set[tuple[str, str]]:
    """``(module, name)`` for every name a package under ``root`` imports from another one
    (read from the source: nothing is imported)."""
    found: set[tuple[str, str]] = set()
    for importer, path in _modules(root):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        module_aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(node.level, node.module, importer, is_pkg)
                if _package(source) not in PACKAGES or _package(source) == _package(importer):
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if _is_module(root, submodule):
                        module_aliases[alias.asname or alias.name] = submodule
                    else:
                        found.add((source, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if (_package(alias.name) in PACKAGES
                            and _package(alias.name) != _package(importer)):
                        module_aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                dotted = _dotted(node)
                for alias, module in module_aliases.items():
                    if dotted.startswith(alias + "."):
                        rest = dotted[len(alias) + 1:].split(".")
                        found.add((module, rest[0]))
    return found


def _dotted(node: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _allowed(annotation: str) -> str:
    for pattern, replacement in ALLOWED:
        annotation = pattern.sub(replacement, annotation)
    return annotation


def _text(annotation: object) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _free_form_kwargs(owner: object) -> bool:
    if isinstance(owner, type):
        return any(f"{k.__module__}.{k.__qualname__}" in ALLOWED_VAR_KEYWORD_OWNERS
                   for k in owner.__mro__)
    return False


def _signature_hits(where: str, func: Callable[..., object], owner: object) -> list[Hit]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    hits = []
    for name, parameter in signature.parameters.items():
        text = _text(parameter.annotation)
        if parameter.kind is inspect.Parameter.VAR_KEYWORD and _free_form_kwargs(owner):
            continue
        if _ANY.search(_allowed(text)):
            hits.append(Hit(where, name, text))
    text = _text(signature.return_annotation)
    if _ANY.search(_allowed(text)):
        hits.append(Hit(where, "return", text))
    return hits


def _ours(obj: object) -> bool:
    """Defined in these packages (not pydantic's ``model_post_init``, not ``object``'s)."""
    return _package(getattr(obj, "__module__", "") or "") in PACKAGES


def _class_hits(cls: type) -> list[Hit]:
    hits: list[Hit] = []
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        where = f"{klass.__module__}.{klass.__qualname__}"
        for name, value in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if isinstance(value, property):
                func = value.fget
            if inspect.isfunction(func) and _ours(func):
                hits += _signature_hits(f"{where}.{name}", func, cls)
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            text = _text(annotation)
            if not name.startswith("_") and "ClassVar" not in text and _ANY.search(_allowed(text)):
                hits.append(Hit(where, name, text))
    return hits


def check() -> list[Hit]:
    hits: set[Hit] = set()
    for module_name, name in sorted(cross_package_imports()):
        try:
            module: ModuleType = importlib.import_module(module_name)
        except ImportError as exc:
            raise SystemExit(f"check_any_signatures: cannot import {module_name}: {exc}") from exc
        obj = getattr(module, name, None)
        if obj is None or not _ours(obj):
            continue
        if inspect.isclass(obj):
            hits.update(_class_hits(obj))
        elif inspect.isfunction(obj):
            hits.update(_signature_hits(f"{obj.__module__}.{obj.__qualname__}", obj, None))
    return sorted(hits, key=str)


def main() -> int:
    sys.path.insert(0, str(REPO))
    hits = check()
    for hit in hits:
        print(hit)
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
