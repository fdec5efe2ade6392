"""Which files to lint: the given paths, ``*.py`` below directories, minus excludes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from .config import Settings

SettingsFor = Callable[[str], Settings]  # a path's settings (request.SettingsResolver.for_path)


@dataclass(frozen=True)
class Target:
    path: str  # path to open
    display: str  # path to print
    missing: bool = False


def display_path(path: str) -> str:
    """Relative to the working directory when below it, else as given."""
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:
            return path
        return path if rel.startswith("..") else rel
    return os.path.normpath(path)


def discover(paths: Sequence[str], settings_for: SettingsFor, force_exclude: bool = False) -> Iterator[Target]:
    """The files to lint below ``paths``. Each entry is judged by the settings of the directory holding it (the
    nearest configuration), so a sub-project's excludes apply to its own tree only."""
    seen: set[str] = set()
    for given in paths or ["."]:
        if os.path.isdir(given):
            if force_exclude and settings_for(given).is_excluded_with_parents(given):
                continue
            for root, dirs, files in os.walk(given):
                settings = settings_for(root)
                dirs[:] = sorted(d for d in dirs if not settings.is_excluded(os.path.join(root, d)))
                for name in sorted(files):
                    if not name.endswith(".py"):
                        continue
                    path = os.path.join(root, name)
                    if settings.is_excluded(path):
                        continue
                    key = os.path.realpath(path) if not os.path.islink(path) else os.path.abspath(path)
                    if key not in seen:
                        seen.add(key)
                        yield Target(path, display_path(path))
        elif os.path.lexists(given):
            if force_exclude and settings_for(given).is_excluded_with_parents(given):
                continue
            key = os.path.abspath(given)
            if key not in seen:
                seen.add(key)
                yield Target(given, display_path(given))
        else:
            yield Target(given, display_path(given), missing=True)
