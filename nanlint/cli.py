"""Command line: ``nanlint [check] PATHS``, ``nanlint rule CODE``, ``nanlint rules``."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

import click

from . import __version__
from .config import DTYPES, ConfigError, Settings, check_selectors, resolve_settings, with_overrides
from .discovery import discover
from .engine import FileResult, LintRequest, decode_source, lint_path, lint_source
from .finding import Finding
from .report import FORMATTERS
from .report.text import format_statistics
from .rules import ALL_RULES, BY_CODE, Rule

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class DefaultCommandGroup(click.Group):
    """``nanlint src/`` means ``nanlint check src/``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nanlint")
def main() -> None:
    """Find the lines of PyTorch code that make a loss or its gradients NaN/Inf."""


def _split(values: Sequence[str]) -> Optional[tuple[str, ...]]:
    if not values:
        return None
    out: list[str] = []
    for value in values:
        out.extend(v.strip().upper() if v.strip().upper() != "ALL" else "ALL" for v in value.split(",") if v.strip())
    return tuple(out)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (replaces the default set).")
@click.option("--extend-select", multiple=True, help="Rule codes or prefixes to add to the selection.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--preview/--no-preview", default=None, help="Enable preview rules.")
@click.option("--precision", default=None, help="Comma-separated dtypes the code runs in (float32,bfloat16,float16).")
@click.option("--output-format", type=click.Choice(sorted(FORMATTERS)), default="text", show_default=True)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when problems are found.")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Use this pyproject.toml.")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--stdin-filename", default=None, help="The name to report for source read from stdin (`-`).")
@click.option("--force-exclude", is_flag=True, help="Apply excludes to paths passed explicitly (for pre-commit).")
def check(paths: tuple[str, ...], select: tuple[str, ...], extend_select: tuple[str, ...], ignore: tuple[str, ...],
          preview: Optional[bool], precision: Optional[str], output_format: str, exit_zero: bool, statistics: bool,
          config_path: Optional[str], isolated: bool, stdin_filename: Optional[str], force_exclude: bool) -> None:
    """Lint PATHS (files or directories; default: the current directory; `-` for stdin)."""
    try:
        settings = _settings(paths, stdin_filename, select, extend_select, ignore, preview, precision,
                             config_path, isolated)
        findings, checked, internal = _run(paths, settings, stdin_filename, force_exclude)
    except ConfigError as exc:
        click.echo(f"nanlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # pragma: no cover - last resort, never a bare traceback
        click.echo(f"nanlint: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    findings.sort(key=Finding.sort_key)
    click.echo(FORMATTERS[output_format](findings, checked), nl=False)
    if statistics and findings:
        click.echo(format_statistics(findings), nl=False, err=output_format != "text")
    if internal:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if findings and not exit_zero else EXIT_CLEAN)


def _settings(paths: Sequence[str], stdin_filename: Optional[str], select: Sequence[str],
              extend_select: Sequence[str], ignore: Sequence[str], preview: Optional[bool],
              precision: Optional[str], config_path: Optional[str], isolated: bool) -> Settings:
    anchor = [stdin_filename] if (not paths or paths == ("-",)) and stdin_filename else list(paths)
    settings = resolve_settings(anchor, config_path, isolated)
    overrides: dict[str, object] = {}
    for name, values in (("select", select), ("extend_select", extend_select), ("ignore", ignore)):
        codes = _split(values)
        if codes is not None:
            check_selectors(codes, f"--{name.replace('_', '-')}")
            if name == "select":
                overrides[name] = codes
            else:
                overrides[name] = tuple(getattr(settings, name)) + codes
    if precision is not None:
        dtypes = tuple(d.strip() for d in precision.split(",") if d.strip())
        bad = [d for d in dtypes if d not in DTYPES]
        if bad:
            raise ConfigError(f"--precision: unknown dtype {bad[0]!r} (expected {', '.join(DTYPES)})")
        overrides["precision"] = dtypes
    return with_overrides(settings, preview=preview, **overrides)


def _request(settings: Settings, path: str) -> LintRequest:
    return LintRequest(settings.rules_for(path), settings.precision)


def _run(paths: Sequence[str], settings: Settings, stdin_filename: Optional[str],
         force_exclude: bool) -> tuple[list[Finding], int, bool]:
    findings: list[Finding] = []
    checked = 0
    internal = False
    results: list[FileResult] = []
    if paths == ("-",) or (not paths and stdin_filename):
        name = stdin_filename or "-"
        if not (force_exclude and stdin_filename and settings.is_excluded_with_parents(stdin_filename)):
            source, _, error = decode_source(name, sys.stdin.buffer.read())
            results.append(FileResult(name, [error]) if error else lint_source(name, source or "",
                                                                               _request(settings, name)))
    else:
        for target in discover(paths, settings, force_exclude):
            if target.missing:
                from .engine import file_error

                results.append(FileResult(target.display, [file_error(target.display, "no such file or directory")]))
                continue
            results.append(lint_path(target.path, _request(settings, target.path), target.display))
    for result in results:
        checked += 1
        findings.extend(result.findings)
        internal = internal or result.internal_error
    return findings, checked, internal


@main.command()
@click.argument("code")
def rule(code: str) -> None:
    """Print the documentation of rule CODE (e.g. NAN101)."""
    found = BY_CODE.get(code.upper())
    if found is None:
        matches = [r for r in ALL_RULES if r.name == code]
        if not matches:
            click.echo(f"nanlint: error: unknown rule `{code}` (see `nanlint rules`)", err=True)
            sys.exit(EXIT_ERROR)
        found = matches[0]
    click.echo(rule_text(found))


def rule_text(rule: type[Rule]) -> str:
    status = "preview (opt-in)" if rule.preview else "on by default"
    return (
        f"# {rule.code} {rule.name}\n\n"
        f"{rule.summary}. Status: {status}. Rests on numerics.md {'rows' if ',' in rule.rows else 'row'} "
        f"{rule.rows}.\n\n{rule.docs()}\n"
    )


@main.command(name="rules")
@click.option("--all", "show_all", is_flag=True, default=True, hidden=True)
def rules_command(show_all: bool) -> None:
    """List every rule: code, name, default status, summary."""
    width = max(len(r.name) for r in ALL_RULES)
    for r in ALL_RULES:
        status = "preview" if r.preview else "on"
        click.echo(f"{r.code}  {r.name:<{width}}  {status:<7}  {r.summary}")
