"""The rule registry: every ``Rule`` subclass defined in a ``nanNNN_*`` module of this package.

A rule is added by adding its module; nothing else needs editing (``python -m nanlint.registry --write``
regenerates the indexes the command line and the screens read without importing the rules).

``ALL_RULES``, ``BY_CODE`` and ``Rule`` are loaded on first use: importing a helper module of this package
(``_screens``, ``_literal_evidence``: the screens) imports neither libcst nor a rule.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Rule


def _discover() -> tuple[type[Rule], ...]:
    from .base import Rule

    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("nan"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value.__module__ == module.__name__ \
                    and getattr(value, "code", None):
                if value.code in found:
                    raise RuntimeError(f"rule code {value.code} defined twice")
                found[value.code] = value
    return tuple(found[code] for code in sorted(found))


def __getattr__(name: str) -> Any:
    if name == "Rule":
        from .base import Rule

        return Rule
    if name in ("ALL_RULES", "BY_CODE"):
        rules = _discover()
        globals().update(ALL_RULES=rules, BY_CODE={rule.code: rule for rule in rules})
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
