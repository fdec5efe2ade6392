"""``[tool.nanlint]`` in the nearest pyproject.toml, merged with command-line options.

Selection works like ruff's: the default set is every non-preview rule;
``select`` replaces it, ``extend-select`` adds to it, ``ignore`` removes from it;
each entry is a code (``NAN101``), a prefix (``NAN1``) or ``ALL``. Preview rules
are enabled by ``preview = true``, or by naming their exact code.
"""
from __future__ import annotations

import fnmatch
import functools
import os
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .registry import ALL_RULES, RuleInfo

if TYPE_CHECKING:  # pragma: no cover
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
    "preview": (lambda v: isinstance(v, bool), "a boolean"),
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
    preview: bool = False
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
        """A pattern without ``/`` matches the file or directory name; one with ``/`` the path below the root.

        Discovery checks each directory as it descends, so an excluded directory
        prunes everything below it, while a path given on the command line is
        linted unless ``--force-exclude`` asks otherwise (ruff's convention).
        """
        relative = None  # computed only for a pattern with `/` (the defaults have none)
        name = os.path.basename(os.path.normpath(path))
        for pattern in (*self.exclude, *self.extend_exclude):
            bare = pattern.rstrip("/")
            if "/" in bare:
                if relative is None:
                    relative = self.relative(path)
                if _glob_match(relative, bare):
                    return True
            elif fnmatch.fnmatchcase(name, bare):
                return True
        return False

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


def _glob_match(relative: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if fnmatch.fnmatchcase(relative, pattern):
        return True
    # a directory pattern matches everything below it
    return fnmatch.fnmatchcase(relative, pattern + "/*")


def find_config(start: str) -> Optional[str]:
    """The nearest pyproject.toml with a [tool.nanlint] table, walking up from ``start``."""
    current = os.path.abspath(start)
    if not os.path.isdir(current):
        current = os.path.dirname(current)
    while True:
        candidate = os.path.join(current, "pyproject.toml")
        if os.path.isfile(candidate):
            try:
                with open(candidate, "rb") as handle:
                    data = tomllib.load(handle)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{candidate}: not valid TOML: {exc}") from exc
            if isinstance(data.get("tool"), dict) and "nanlint" in data["tool"]:
                return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def load_config(path: str) -> Settings:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    table = data.get("tool", {}).get("nanlint", {})
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
        preview=table.get("preview", False),
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


def resolve_settings(paths: Sequence[str], config: Optional[str] = None, isolated: bool = False) -> Settings:
    """Settings from ``--config`` or the nearest pyproject.toml above the first path (or the cwd)."""
    if isolated:
        return Settings(root=os.getcwd())
    if config is not None:
        return load_config(config)
    start = paths[0] if paths and paths[0] != "-" else os.getcwd()
    found = find_config(start)
    if found is None:
        return Settings(root=os.getcwd())
    return load_config(found)


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(settings, **values)
