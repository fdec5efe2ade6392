"""The rule registry: every ``Rule`` subclass defined in a ``nanNNN_*`` module of this package.

A rule is added by adding its module; nothing else needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import Rule


def _discover() -> tuple[type[Rule], ...]:
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


ALL_RULES: tuple[type[Rule], ...] = _discover()
BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in ALL_RULES}
