"""The rule registry: every ``Rule`` subclass defined in a ``nanNNN_*`` module of this package.

A rule is added by adding its module; nothing else needs editing (``python -m nanlint.registry --write``
regenerates the indexes the command line and the screens read without importing the rules).

``ALL_RULES``, ``BY_CODE`` and ``Rule`` are loaded on first use: importing a helper module of this package
(``_screens``, ``_literal_evidence``: the screens) imports neither libcst nor a rule. ``rule_class(code)``
imports only the module of the rule asked for (``nanlint/_rule_index.py`` names it): a file the second stage
keeps for two rules imports two of the thirty modules, not all of them.
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


_loaded: dict[str, type[Rule]] = {}  # by code: the classes ``rule_class`` imported


def rule_class(code: str) -> type[Rule]:
    """The class of rule ``code``, importing its module alone (``BY_CODE`` imports every rule's); KeyError for a
    code no rule has."""
    found = _loaded.get(code)
    if found is None:
        everything = globals().get("BY_CODE")
        if everything is not None:
            found = everything[code]
        else:
            from ..registry import BY_CODE as INDEX

            module = importlib.import_module(f"{__name__}.{INDEX[code].module}")
            found = next(value for value in vars(module).values()
                         if isinstance(value, type) and value.__module__ == module.__name__
                         and getattr(value, "code", None) == code)
        _loaded[code] = found
    return found


def __getattr__(name: str) -> Any:
    if name == "Rule":
        from .base import Rule

        return Rule
    if name in ("ALL_RULES", "BY_CODE"):
        rules = _discover()
        globals().update(ALL_RULES=rules, BY_CODE={rule.code: rule for rule in rules})
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
