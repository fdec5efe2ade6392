"""``[tool.nanlint]`` in the nearest pyproject.toml, merged with command-line options.

Selection works like ruff's: the default set is every non-preview rule;
``select`` replaces it, ``extend-select`` adds to it, ``ignore`` removes from it;
each entry is a code (``NAN101``), a prefix (``NAN1``) or ``ALL``. Preview rules
are enabled by ``preview = true``, or by naming their exact code.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

from .finding import CONFIDENCES, DEFAULT_CONFIDENCE
from .registry import ALL_RULES, RuleInfo

if TYPE_CHECKING:  # pragma: no cover
    from pathspec import GitIgnoreSpec

    from .rules.base import Rule

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "build", "dist", "__pycache__", "site-packages",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".nanlint_cache", "node_modules", ".eggs",
    "*.egg-info", "__pypackages__", ".ipynb_checkpoints",
)


class ConfigError(Exception):
    """A bad configuration: the message names the file, the key and what was expected."""


def _list_of_str(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


# key -> (validator, expected type in words)
SCHEMA: dict[str, tuple[Any, str]] = {
    "select": (_list_of_str, "a list of rule codes or prefixes"),
    "ignore": (_list_of_str, "a list of rule codes or prefixes"),
    "extend-select": (_list_of_str, "a list of rule codes or prefixes"),
    "per-file-ignores": (
        lambda v: isinstance(v, dict) and all(_list_of_str(x) for x in v.values()),
        "a table of glob = [codes]",
    ),
    "exclude": (_list_of_str, "a list of glob patterns"),
    "extend-exclude": (_list_of_str, "a list of glob patterns"),
    "respect-gitignore": (lambda v: isinstance(v, bool), "a boolean"),
    "preview": (lambda v: isinstance(v, bool), "a boolean"),
    # the lowest confidence reported (Finding.confidence); lower findings are dropped and do not fail the run
    "confidence": (lambda v: v in CONFIDENCES, "one of " + ", ".join(repr(c) for c in CONFIDENCES)),
    "precision": (
        lambda v: _list_of_str(v) and all(x in DTYPES for x in v),
        "a list of dtypes among " + ", ".join(repr(d) for d in DTYPES),
    ),
    # fixes (nanlint/fixes.py): the eps literal to write instead of ``torch.finfo(x.dtype).eps`` (refused when it
    # underflows in a dtype of ``precision``), and ``max_norm`` of the inserted ``clip_grad_norm_``
    "fix-eps": (_positive_number, "a positive number (e.g. 1e-4)"),
    "max-grad-norm": (_positive_number, "a positive number (e.g. 1.0)"),
    # the result cache (nanlint/cache.py); relative to the directory of the config file
    "cache-dir": (lambda v: isinstance(v, str) and v.strip() != "", "a directory path (a string)"),
}


@dataclass(frozen=True)
class Settings:
    root: str = "."  # directory of the config file (globs are relative to it)
    config_path: Optional[str] = None
    select: Optional[tuple[str, ...]] = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    extend_exclude: tuple[str, ...] = ()
    respect_gitignore: bool = True  # skip what .gitignore files ignore when walking directories
    preview: bool = False
    confidence: str = DEFAULT_CONFIDENCE  # the lowest confidence reported
    precision: Optional[tuple[str, ...]] = None
    fix_eps: Optional[float] = None  # `fix-eps`: None = dtype-aware `torch.finfo(x.dtype).eps`
    max_grad_norm: float = 1.0  # `max-grad-norm`: max_norm of the clipping NAN601's fix inserts
    cache_dir: Optional[str] = None  # `cache-dir` (absolute); None: `.nanlint_cache` beside the config

    def lint_options(self) -> tuple[tuple[str, Any], ...]:
        """Options rules read through ``ctx.options`` (``LintRequest.options``)."""
        options: list[tuple[str, Any]] = [("max-grad-norm", self.max_grad_norm)]
        if self.fix_eps is not None:
            options.append(("fix-eps", self.fix_eps))
        return tuple(options)

    # -- rules ----------------------------------------------------------
    def enabled_codes(self) -> tuple[str, ...]:
        """The codes of the enabled rules (from the rule index: no rule is imported)."""
        return _enabled_codes(self.select, self.extend_select, self.ignore, self.preview)

    def codes_for(self, path: str) -> tuple[str, ...]:
        """The codes of the rules enabled for ``path`` (after per-file-ignores)."""
        codes = self.enabled_codes()
        ignored = self.ignored_codes_for(path)
        if not ignored:
            return codes
        return tuple(code for code in codes if not _matches(code, ignored))

    def enabled_rules(self) -> tuple[type[Rule], ...]:
        from .rules import BY_CODE

        return tuple(BY_CODE[code] for code in self.enabled_codes())

    def rules_for(self, path: str) -> tuple[type[Rule], ...]:
        from .rules import BY_CODE

        return tuple(BY_CODE[code] for code in self.codes_for(path))

    def ignored_codes_for(self, path: str) -> tuple[str, ...]:
        if not self.per_file_ignores:
            return ()
        relative = self.relative(path)
        codes: list[str] = []
        for pattern, ignored in self.per_file_ignores:
            if _glob_match(relative, pattern):
                codes.extend(ignored)
        return tuple(codes)

    # -- files ----------------------------------------------------------
    def relative(self, path: str) -> str:
        absolute = os.path.abspath(path)
        try:
            rel = os.path.relpath(absolute, os.path.abspath(self.root))
        except ValueError:
            return absolute.replace(os.sep, "/")
        return rel.replace(os.sep, "/")

    def is_excluded(self, path: str) -> bool:
        """Does an ``exclude`` or ``extend-exclude`` pattern match? Patterns have .gitignore semantics, relative
        to the configuration's directory: one without ``/`` matches a file or directory name at any depth, one
        with ``/`` the path below the root, ``**`` any number of directories, and a directory pattern everything
        below it.

        Discovery checks each directory as it descends, so an excluded directory
        prunes everything below it, while a path given on the command line is
        linted unless ``--force-exclude`` asks otherwise (ruff's convention).
        """
        relative = self.relative(path)
        patterns = (*self.exclude, *self.extend_exclude)
        quick = _name_matcher(patterns)
        if relative.startswith("../") or os.path.isabs(relative):  # outside the root: only name patterns apply
            name = os.path.basename(os.path.normpath(path))
            if quick is not None:
                return quick(name)
            return _glob_match(name, tuple(p for p in patterns if "/" not in p.rstrip("/")))
        if quick is not None and relative.rsplit("/", 1)[-1] not in (".", ".."):
            return quick(relative.rsplit("/", 1)[-1])
        if os.path.isdir(path):
            relative += "/"
        return bool(own_verdict(_spec(patterns), relative))

    def is_excluded_with_parents(self, path: str) -> bool:
        """For explicitly passed paths under ``--force-exclude``: the path or a directory above it (below the root)."""
        relative = self.relative(path)
        if relative.startswith("../"):
            return self.is_excluded(path)
        parts = relative.split("/")
        root = os.path.abspath(self.root)
        return any(self.is_excluded(os.path.join(root, *parts[: i + 1])) for i in range(len(parts)))


def _matches(code: str, selectors: Iterable[str]) -> bool:
    return any(s == "ALL" or code.startswith(s) for s in selectors)


_NAME_GLOB_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-*?")


@functools.lru_cache(maxsize=256)
def _name_matcher(patterns: tuple[str, ...]) -> Optional[Callable[[str], bool]]:
    """A quick exclude test when every pattern matches a bare name: letters, digits, ``_.-``, ``*`` and ``?`` only
    (no ``/``, ``!``, ``[``, ``\\``, ``#``, space or ``**``), like the default excludes. For such patterns the
    .gitignore verdict on an entry (:func:`own_verdict`) is whether a pattern matches its name, which ``fnmatch``
    answers without importing pathspec and without a ``stat`` (tests/test_globs_gitignore.py compares the two).
    None for any other pattern set."""
    if not all(p and set(p) <= _NAME_GLOB_CHARS and "**" not in p and p.strip(".") for p in patterns):
        return None
    import fnmatch
    import re

    if not patterns:
        return lambda name: False
    regex = re.compile("|".join(fnmatch.translate(p) for p in patterns))
    return lambda name: regex.match(name) is not None


@functools.lru_cache(maxsize=256)
def _spec(patterns: tuple[str, ...]) -> GitIgnoreSpec:
    from pathspec import GitIgnoreSpec  # here: `--version`, `rules` and `rule` need no globs

    return GitIgnoreSpec.from_lines(p[2:] if p.startswith("./") else p for p in patterns)


def own_verdict(spec: GitIgnoreSpec, relative: str) -> Optional[bool]:
    """What ``spec`` says about the entry ``relative`` itself (a trailing ``/`` marks a directory): True ignored,
    False re-included by a ``!`` pattern, None no pattern. Unlike ``spec.match_file``, a pattern that matches only
    a directory above the entry does not count: a walk has already pruned an excluded directory, and a path named
    on the command line is linted even inside one (ruff's convention; ``--force-exclude`` checks the parents).
    pathspec marks the "below a matched directory" part of a match with the ``ps_d`` group."""
    verdict: Optional[bool] = None
    for pattern in spec.patterns:
        if pattern.include is None or pattern.regex is None:
            continue
        match = pattern.regex.match(relative)
        if match is None:
            continue
        below = match.groupdict().get("ps_d")
        if below is None or match.end("ps_d") == len(relative):
            verdict = bool(pattern.include)
    return verdict


def _glob_match(relative: str, patterns: "str | tuple[str, ...]") -> bool:
    """Does a .gitignore-style pattern (or any of several) match ``relative`` (``/``-separated, below the root;
    a trailing ``/`` marks a directory)?"""
    return _spec((patterns,) if isinstance(patterns, str) else patterns).match_file(relative)


CONFIG_NAMES = ("nanlint.toml", "pyproject.toml")  # in one directory, nanlint.toml wins (ruff's ruff.toml rule)


def _toml() -> Any:
    """tomllib (tomli before 3.11), imported when a configuration file is read (`--isolated` reads none)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def _has_table(path: str) -> bool:
    """Does this configuration file configure nanlint? (A nanlint.toml always does.)"""
    if os.path.basename(path) != "pyproject.toml":
        return True
    tomllib = _toml()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return isinstance(data.get("tool"), dict) and "nanlint" in data["tool"]


def find_config(start: str) -> Optional[str]:
    """The nearest ``nanlint.toml``, or ``pyproject.toml`` with a [tool.nanlint] table, walking up from ``start``."""
    current = os.path.abspath(start)
    if not os.path.isdir(current):
        current = os.path.dirname(current)
    while True:
        for name in CONFIG_NAMES:
            candidate = os.path.join(current, name)
            if os.path.isfile(candidate) and _has_table(candidate):
                return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def load_config(path: str) -> Settings:
    """Settings from a ``pyproject.toml`` (its [tool.nanlint] table) or a ``nanlint.toml`` (its top level)."""
    tomllib = _toml()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    table = data if os.path.basename(path) == "nanlint.toml" else data.get("tool", {}).get("nanlint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.nanlint] must be a table")
    return settings_from_table(table, path)


def settings_from_table(table: dict[str, Any], path: str) -> Settings:
    for key, value in table.items():
        if key not in SCHEMA:
            known = ", ".join(sorted(SCHEMA))
            raise ConfigError(f"{path}: unknown key `{key}` in [tool.nanlint] (known keys: {known})")
        validate, expected = SCHEMA[key]
        if not validate(value):
            raise ConfigError(f"{path}: [tool.nanlint] `{key}` must be {expected}, got {value!r}")
    for key in ("select", "ignore", "extend-select"):
        check_selectors(table.get(key, []), f"{path}: [tool.nanlint] `{key}`")
    for pattern, codes in table.get("per-file-ignores", {}).items():
        check_selectors(codes, f"{path}: [tool.nanlint] `per-file-ignores` entry {pattern!r}")
    if "fix-eps" in table:
        from .eps import check_fix_eps

        problem = check_fix_eps(float(table["fix-eps"]), table.get("precision"))
        if problem is not None:
            raise ConfigError(f"{path}: [tool.nanlint] {problem}")
    settings = Settings(
        root=os.path.dirname(os.path.abspath(path)),
        config_path=path,
        select=tuple(table["select"]) if "select" in table else None,
        extend_select=tuple(table.get("extend-select", ())),
        ignore=tuple(table.get("ignore", ())),
        per_file_ignores=tuple((k, tuple(v)) for k, v in table.get("per-file-ignores", {}).items()),
        exclude=tuple(table["exclude"]) if "exclude" in table else DEFAULT_EXCLUDES,
        extend_exclude=tuple(table.get("extend-exclude", ())),
        respect_gitignore=table.get("respect-gitignore", True),
        preview=table.get("preview", False),
        confidence=table.get("confidence", DEFAULT_CONFIDENCE),
        precision=tuple(table["precision"]) if "precision" in table else None,
        fix_eps=float(table["fix-eps"]) if "fix-eps" in table else None,
        max_grad_norm=float(table.get("max-grad-norm", 1.0)),
        cache_dir=os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(table["cache-dir"]))
        if "cache-dir" in table else None,
    )
    return settings


@functools.lru_cache(maxsize=64)
def _enabled_codes(select: Optional[tuple[str, ...]], extend_select: tuple[str, ...], ignore: tuple[str, ...],
                   preview: bool) -> tuple[str, ...]:
    """``Settings.enabled_codes``, once per selection (it is asked for every file)."""
    chosen: list[RuleInfo] = []
    selectors = select if select is not None else None
    for rule in ALL_RULES:
        if selectors is None:
            on = rule.default_on() or preview
        else:
            on = _matches(rule.code, selectors)
            if on and rule.preview and not preview and rule.code not in selectors:
                on = False
        if not on and _matches(rule.code, extend_select):
            on = not rule.preview or preview or rule.code in extend_select
        if on and _matches(rule.code, ignore):
            on = False
        if on:
            chosen.append(rule)
    return tuple(rule.code for rule in chosen)


def check_selectors(selectors: Sequence[str], where: str) -> None:
    for selector in selectors:
        if selector == "ALL":
            continue
        if not any(rule.code.startswith(selector) for rule in ALL_RULES):
            raise ConfigError(f"{where}: `{selector}` matches no rule code (see `nanlint rules`)")


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(settings, **values)
