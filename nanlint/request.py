"""From configuration to what one file is linted with: the one place `check`, `--fix`, the LSP and `verify` ask.

* :func:`build_request` turns resolved :class:`~nanlint.config.Settings` into the
  :class:`~nanlint.engine.LintRequest` for one file (its rules after
  ``per-file-ignores``, ``precision``, the options rules read).
* :class:`Overrides` holds what the command line adds on top of any file's
  configuration (``--select``, ``--extend-select``, ``--ignore``, ``--preview``,
  ``--precision``, ``--[no-]respect-gitignore``, ``--confidence``); :meth:`Overrides.from_cli` validates the raw option values.
* :class:`SettingsResolver` gives each file its settings: the nearest configuration
  file above it (``nanlint.toml``, or a ``pyproject.toml`` with a ``[tool.nanlint]``
  table), or the one named by ``--config``, or none under ``--isolated``; with the
  overrides applied. The answer depends only on the file, never on the order or on
  the other paths of a run, so a pre-commit batch and ``nanlint .`` agree.

Typical use::

    resolver = SettingsResolver(Overrides.from_cli(select=("NAN1",)))
    request = resolver.request_for("src/model.py")
    lint_source("src/model.py", text, request)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .config import DTYPES, ConfigError, Settings, check_selectors, find_config, load_config, with_overrides
from .files import SUPPRESSIONS_OPTION, LintRequest

__all__ = ["Overrides", "SettingsResolver", "build_request"]


def build_request(settings: Settings, path: str, suppressions: bool = False) -> LintRequest:
    """What ``path`` is linted with under ``settings``: the enabled rules minus its per-file-ignores, the declared
    precision and the rule options. ``suppressions``: also return what comments suppress, marked, and where a
    comment would suppress each finding (``engine.SUPPRESSIONS_OPTION``: SARIF and ``--add-noqa`` want them)."""
    options = settings.lint_options()
    if suppressions:
        options += ((SUPPRESSIONS_OPTION, True),)
    return LintRequest(settings.codes_for(path), settings.precision, options)  # codes: no rule imported here


def _split(values: Sequence[str]) -> Optional[tuple[str, ...]]:
    """``("NAN1,NAN2", "nan3")`` -> ``("NAN1", "NAN2", "NAN3")``; None when no value was given."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().upper()
            if part:
                out.append(part)
    return tuple(out)


@dataclass(frozen=True)
class Overrides:
    """Command-line options that apply on top of every file's configuration."""

    select: Optional[tuple[str, ...]] = None  # replaces the configured selection
    extend_select: tuple[str, ...] = ()  # added to the configured extend-select
    ignore: tuple[str, ...] = ()  # added to the configured ignore
    preview: Optional[bool] = None
    precision: Optional[tuple[str, ...]] = None
    respect_gitignore: Optional[bool] = None
    confidence: Optional[str] = None  # the lowest confidence reported

    @classmethod
    def from_cli(cls, select: Sequence[str] = (), extend_select: Sequence[str] = (), ignore: Sequence[str] = (),
                 preview: Optional[bool] = None, precision: Optional[str] = None,
                 respect_gitignore: Optional[bool] = None, confidence: Optional[str] = None) -> "Overrides":
        """Parse and validate raw option values (each a comma-separated list); raises ConfigError."""
        parsed: dict[str, Optional[tuple[str, ...]]] = {}
        for name, values in (("select", select), ("extend_select", extend_select), ("ignore", ignore)):
            codes = _split(values)
            if codes is not None:
                check_selectors(codes, f"--{name.replace('_', '-')}")
            parsed[name] = codes
        dtypes: Optional[tuple[str, ...]] = None
        if precision is not None:
            dtypes = tuple(d.strip() for d in precision.split(",") if d.strip())
            bad = [d for d in dtypes if d not in DTYPES]
            if bad:
                raise ConfigError(f"--precision: unknown dtype {bad[0]!r} (expected {', '.join(DTYPES)})")
        return cls(parsed["select"], parsed["extend_select"] or (), parsed["ignore"] or (), preview, dtypes,
                   respect_gitignore, confidence)

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with these options on top; raises ConfigError when ``fix-eps`` underflows in the
        resulting precision."""
        result = with_overrides(
            settings, select=self.select, preview=self.preview, precision=self.precision,
            respect_gitignore=self.respect_gitignore, confidence=self.confidence,
            extend_select=settings.extend_select + self.extend_select if self.extend_select else None,
            ignore=settings.ignore + self.ignore if self.ignore else None,
        )
        if result.fix_eps is not None:
            from .eps import check_fix_eps

            problem = check_fix_eps(result.fix_eps, result.precision)
            if problem is not None:
                where = f"{result.config_path}: [tool.nanlint] " if result.config_path else ""
                raise ConfigError(f"{where}{problem}")
        return result


@dataclass
class SettingsResolver:
    """Each file's settings (the nearest configuration above it, ruff's hierarchical model) and lint request.

    ``config_path`` (``--config``) makes every file use that one file; ``isolated``
    (``--isolated``) uses no file at all. Configuration files are read once per run
    and looked up once per directory.
    """

    overrides: Overrides = Overrides()
    config_path: Optional[str] = None
    isolated: bool = False
    suppressions: bool = False  # see build_request
    cwd: str = field(default_factory=os.getcwd)
    _by_config: dict[Optional[str], Settings] = field(default_factory=dict, init=False, repr=False)
    _config_of_dir: dict[str, Optional[str]] = field(default_factory=dict, init=False, repr=False)
    _requests: dict[LintRequest, LintRequest] = field(default_factory=dict, init=False, repr=False)

    def config_for(self, path: str) -> Optional[str]:
        """The configuration file that governs ``path`` (a file or directory), or None."""
        if self.isolated:
            return None
        if self.config_path is not None:
            return self.config_path
        absolute = os.path.abspath(os.path.join(self.cwd, path))
        directory = absolute if os.path.isdir(absolute) else os.path.dirname(absolute)
        if directory not in self._config_of_dir:
            self._config_of_dir[directory] = find_config(directory)
        return self._config_of_dir[directory]

    def for_path(self, path: str) -> Settings:
        """The settings of ``path`` (a file or a directory); raises ConfigError for a bad configuration file."""
        config = self.config_for(path)
        settings = self._by_config.get(config)
        if settings is None:
            base = Settings(root=self.cwd) if config is None else load_config(config)
            settings = self.overrides.apply(base)
            self._by_config[config] = settings
        return settings

    def request_for(self, path: str) -> LintRequest:
        """:func:`build_request` with ``path``'s settings; equal requests are one object (the cache and the
        process pool key on it)."""
        made = build_request(self.for_path(path), path, self.suppressions)
        return self._requests.setdefault(made, made)
