"""Which files to lint: the given paths, ``*.py`` and ``*.ipynb`` below directories, minus excludes and what git
ignores."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

from .config import Settings, own_verdict

if TYPE_CHECKING:  # pragma: no cover
    from pathspec import GitIgnoreSpec

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


def _display_below(shown_root: str, root: str, name: str) -> str:
    """``display_path(os.path.join(root, name))`` from ``shown_root = display_path(root)`` (``name``: one
    component, neither ``.`` nor ``..``), without a relpath per file."""
    if os.path.isabs(root) and shown_root == root:  # outside the working directory: shown as given
        return os.path.join(root, name)
    shown = name if shown_root == "." else os.path.join(shown_root, name)
    if os.path.isabs(root) and shown.startswith(".."):  # display_path's own rule, on the joined path
        return os.path.join(root, name)
    return shown


@dataclass
class GitIgnore:
    """What git would ignore: the ``.gitignore`` files from a path's directory up to its repository's root (the
    deepest one that decides wins, as in git) and ``.git/info/exclude``. Outside a git repository nothing is
    ignored. Each directory is read once."""

    _specs: dict[str, Optional[GitIgnoreSpec]] = field(default_factory=dict)
    _roots: dict[str, Optional[str]] = field(default_factory=dict)

    def _root(self, directory: str) -> Optional[str]:
        if directory not in self._roots:
            parent = os.path.dirname(directory)
            self._roots[directory] = directory if os.path.exists(os.path.join(directory, ".git")) else \
                None if parent == directory else self._root(parent)
        return self._roots[directory]

    def _spec(self, directory: str, root: str) -> Optional[GitIgnoreSpec]:
        if directory not in self._specs:
            lines: list[str] = []
            sources = [os.path.join(directory, ".gitignore")]
            if directory == root:
                sources.insert(0, os.path.join(root, ".git", "info", "exclude"))
            for source in sources:
                try:
                    with open(source, encoding="utf-8", errors="replace") as handle:
                        lines.extend(handle.read().splitlines())
                except OSError:
                    continue
            from pathspec import GitIgnoreSpec  # here: `--version`, `rules` and `rule` need no globs

            self._specs[directory] = GitIgnoreSpec.from_lines(lines) if lines else None
        return self._specs[directory]

    def ignored_with_parents(self, path: str) -> bool:
        """Is ``path`` or a directory above it (inside its repository) ignored? For paths named explicitly."""
        absolute = os.path.abspath(path)
        root = self._root(os.path.dirname(absolute))
        if root is None:
            return False
        current = absolute
        while current != root and len(current) > len(root):
            if self.ignored(current):
                return True
            current = os.path.dirname(current)
        return False

    def ignored(self, path: str) -> bool:
        """Is the entry ``path`` itself ignored (its parent directories are the walk's business)?"""
        absolute = os.path.abspath(path)
        if os.path.basename(absolute) == ".git":
            return True
        directory = os.path.dirname(absolute)
        root = self._root(directory)
        if root is None:
            return False
        suffix = "/" if os.path.isdir(absolute) else ""
        while True:  # the deepest .gitignore with a verdict decides
            spec = self._spec(directory, root)
            if spec is not None:
                verdict = own_verdict(spec, os.path.relpath(absolute, directory).replace(os.sep, "/") + suffix)
                if verdict is not None:
                    return verdict
            if directory == root:
                return False
            directory = os.path.dirname(directory)


def discover(paths: Sequence[str], settings_for: SettingsFor, force_exclude: bool = False) -> Iterator[Target]:
    """The files to lint below ``paths``. Each entry is judged by the settings of the directory holding it (the
    nearest configuration), so a sub-project's excludes apply to its own tree only."""
    seen: set[str] = set()
    git = GitIgnore()

    def skipped(path: str, settings: Settings) -> bool:
        return settings.is_excluded(path) or (settings.respect_gitignore and git.ignored(path))

    def force_excluded(path: str) -> bool:
        settings = settings_for(path)
        return settings.is_excluded_with_parents(path) or (settings.respect_gitignore and git.ignored_with_parents(path))

    for given in paths or ["."]:
        if os.path.isdir(given):
            if force_exclude and force_excluded(given):
                continue
            for root, dirs, files in os.walk(given):
                settings = settings_for(root)
                dirs[:] = sorted(d for d in dirs if not skipped(os.path.join(root, d), settings))
                real_root: Optional[str] = None  # realpath and display_path once per directory, not per file
                shown_root = ""
                for name in sorted(files):
                    if not name.endswith((".py", ".ipynb")):
                        continue
                    path = os.path.join(root, name)
                    if skipped(path, settings):
                        continue
                    if real_root is None:
                        real_root, shown_root = os.path.realpath(root), display_path(root)
                    # = os.path.realpath(path) (the walk does not follow links, so only `name` can be one)
                    key = os.path.join(real_root, name) if not os.path.islink(path) else os.path.abspath(path)
                    if key not in seen:
                        seen.add(key)
                        yield Target(path, _display_below(shown_root, root, name))
        elif os.path.lexists(given):
            if force_exclude and force_excluded(given):
                continue
            key = os.path.abspath(given)
            if key not in seen:
                seen.add(key)
                yield Target(given, display_path(given))
        else:
            yield Target(given, display_path(given), missing=True)
