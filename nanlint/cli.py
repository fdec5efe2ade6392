"""Command line: ``nanlint [check] PATHS``, ``nanlint rule CODE``, ``nanlint rules``."""
from __future__ import annotations

import os
import sys
from typing import Iterable, Optional, Sequence

import click

from . import __version__
from .config import DTYPES, ConfigError, Settings, check_selectors, resolve_settings, with_overrides
from .discovery import discover
from .files import FileResult, LintRequest, decode_source
from .finding import Finding
from .registry import ALL_RULES, BY_CODE, RuleInfo
from .report import FORMATTERS
from .report.text import format_statistics

# Imports are kept to what each command needs: `--version`, `--help`, `rules` and `rule` read the rule index
# (nanlint/registry.py) and import neither libcst nor a rule; a run whose files are all cache hits imports the
# cache and the runner only; the engine (libcst, the rules, the analysis) is imported where a file is analysed.

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
@click.option("--fix/--no-fix", default=False, help="Apply safe fixes (and unsafe ones with --unsafe-fixes).")
@click.option("--unsafe-fixes/--no-unsafe-fixes", default=False,
              help="Also apply (or count as fixable) fixes that change numerics: eps guards, clamps, clipping.")
@click.option("--diff", is_flag=True, help="Print a unified diff of the fixes instead of writing them; exit 1 when "
                                          "there is a diff.")
@click.option("--show-fixes/--no-show-fixes", default=False, help="List the findings that were (or would be) fixed.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="NANLINT_CACHE_DIR",
              help="Where to keep the result cache (default: `.nanlint_cache` beside the configuration file, "
                   "or in the working directory; config key `cache-dir`).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per usable core; 1 lints in this process).")
def check(paths: tuple[str, ...], select: tuple[str, ...], extend_select: tuple[str, ...], ignore: tuple[str, ...],
          preview: Optional[bool], precision: Optional[str], output_format: str, exit_zero: bool, statistics: bool,
          config_path: Optional[str], isolated: bool, stdin_filename: Optional[str], force_exclude: bool,
          fix: bool = False, unsafe_fixes: bool = False, diff: bool = False, show_fixes: bool = False,
          no_cache: bool = False, cache_dir: Optional[str] = None, jobs: Optional[int] = None) -> None:
    """Lint PATHS (files or directories; default: the current directory; `-` for stdin)."""
    try:
        settings = _settings(paths, stdin_filename, select, extend_select, ignore, preview, precision,
                             config_path, isolated)
        _check_fix_eps(settings)
        if fix or diff:
            sys.exit(_fix(paths, settings, stdin_filename, force_exclude, unsafe_fixes, diff, show_fixes,
                          output_format, exit_zero, statistics))
        findings, checked, internal = _run(paths, settings, stdin_filename, force_exclude,
                                           None if no_cache else (cache_dir or _default_cache_dir(settings)), jobs)
    except ConfigError as exc:
        click.echo(f"nanlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # pragma: no cover - last resort, never a bare traceback
        click.echo(f"nanlint: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    findings.sort(key=Finding.sort_key)
    click.echo(_format(output_format, findings, checked, unsafe_fixes), nl=False)
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
    return LintRequest(settings.codes_for(path), settings.precision, settings.lint_options())


# -- fixes (--fix, --unsafe-fixes, --diff, --show-fixes) --------------------------------------------
def _check_fix_eps(settings: Settings) -> None:
    """`fix-eps` must not underflow in a declared dtype (also after `--precision`)."""
    if settings.fix_eps is None:
        return
    from .eps import check_fix_eps

    problem = check_fix_eps(settings.fix_eps, settings.precision)
    if problem is not None:
        where = f"{settings.config_path}: [tool.nanlint] " if settings.config_path else ""
        raise ConfigError(f"{where}{problem}")


def _format(output_format: str, findings: Sequence[Finding], checked: int, unsafe_fixes: bool,
            fixed: Optional[int] = None) -> str:
    if output_format == "text":
        from .report.text import format_text

        return format_text(findings, checked, unsafe_fixes=unsafe_fixes, fixed=fixed)
    return FORMATTERS[output_format](findings, checked)


def _fix(paths: Sequence[str], settings: Settings, stdin_filename: Optional[str], force_exclude: bool,
         unsafe: bool, dry_run: bool, show_fixes: bool, output_format: str, exit_zero: bool,
         statistics: bool) -> int:
    """``--fix`` (write) or ``--diff`` (print); returns the exit status."""
    from .files import file_error
    from .fixes import FileFix, finish, fix_file, fix_source
    from .report.text import format_fixed, format_unfixable

    results: list[FileFix] = []
    stdin_text: Optional[str] = None
    if paths == ("-",) or (not paths and stdin_filename):
        name = stdin_filename or "-"
        if not (force_exclude and stdin_filename and settings.is_excluded_with_parents(stdin_filename)):
            data = sys.stdin.buffer.read()
            source, _, error = decode_source(name, data)
            if error is not None or source is None:
                results.append(FileFix(name, findings=[error] if error else []))
            else:
                outcome = fix_source(name, source, _request(settings, name), unsafe)
                results.append(finish(outcome, None, None, "utf-8", write=False))
                stdin_text = outcome.source
    else:
        for target in discover(paths, settings, force_exclude):
            if target.missing:
                results.append(FileFix(target.display, findings=[file_error(target.display,
                                                                            "no such file or directory")]))
                continue
            results.append(fix_file(target.path, target.display, _request(settings, target.path), unsafe,
                                    write=not dry_run))
    remaining = sorted((f for r in results for f in r.findings), key=Finding.sort_key)
    fixed = sorted((f for r in results for f in r.fixed), key=Finding.sort_key)
    for result in results:
        for failure in (result.outcome.failed if result.outcome else ()):
            f = failure.finding
            click.echo(f"nanlint: warning: {f.path}:{f.line}:{f.column}: {f.code} fix not applied: {failure.reason}",
                       err=True)
        if result.error is not None:
            click.echo(f"nanlint: error: {result.display}: not fixed: {result.error}", err=True)
    internal = any(r.internal_error for r in results)
    errors = any(r.error is not None for r in results)
    if dry_run:
        diffs = "".join(r.diff for r in results)
        click.echo(diffs, nl=False)
        hidden = sum(1 for f in remaining if f.fix is not None and f.fix.applicability != "safe") if not unsafe else 0
        would = f"Would fix {len(fixed)} problem{'s' if len(fixed) != 1 else ''}" if fixed else "No fixes to apply"
        more = f" ({hidden} more with `--unsafe-fixes`)" if hidden else ""
        click.echo(f"{would}{more}.", err=True)
        if show_fixes:
            click.echo(format_fixed(fixed, "Would fix"), nl=False, err=True)
        if internal or errors:
            return EXIT_ERROR
        return EXIT_FINDINGS if diffs and not exit_zero else EXIT_CLEAN
    report = _format(output_format, remaining, len(results), unsafe, fixed=len(fixed))
    if stdin_text is not None:
        click.echo(stdin_text, nl=False)  # the fixed source goes to stdout, the report to stderr (like ruff)
        click.echo(report, nl=False, err=True)
    else:
        click.echo(report, nl=False)
    side = stdin_text is not None or output_format != "text"
    if show_fixes:
        click.echo(format_fixed(fixed) + format_unfixable(remaining), nl=False, err=side)
    if statistics and remaining:
        click.echo(format_statistics(remaining), nl=False, err=side)
    if internal or errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if remaining and not exit_zero else EXIT_CLEAN


def _default_cache_dir(settings: Settings) -> str:
    from .cache import CACHE_DIR_NAME

    return settings.cache_dir or os.path.join(settings.root, CACHE_DIR_NAME)


def _run(paths: Sequence[str], settings: Settings, stdin_filename: Optional[str], force_exclude: bool,
         cache_dir: Optional[str] = None, jobs: Optional[int] = None) -> tuple[list[Finding], int, bool]:
    """Lint the files (through the cache and a process pool, see runner.py); stdin in this process."""
    findings: list[Finding] = []
    checked = 0
    internal = False
    if paths == ("-",) or (not paths and stdin_filename):
        results: Iterable[FileResult] = []
        name = stdin_filename or "-"
        if not (force_exclude and stdin_filename and settings.is_excluded_with_parents(stdin_filename)):
            source, _, error = decode_source(name, sys.stdin.buffer.read())
            from .engine import lint_source

            results = [FileResult(name, [error]) if error else lint_source(name, source or "",
                                                                           _request(settings, name))]
    else:
        from .cache import Cache
        from .runner import Job, lint_files

        requests: dict[tuple[object, ...], LintRequest] = {}

        def request(path: str) -> LintRequest:  # one object per distinct rule set (per-file-ignores)
            made = _request(settings, path)
            return requests.setdefault(made.rules, made)

        work = (Job(t.path, t.display, request(t.path), t.missing) for t in discover(paths, settings, force_exclude))
        results = lint_files(work, jobs, Cache(cache_dir) if cache_dir is not None else None)
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


def rule_text(rule: RuleInfo) -> str:
    """The documentation of a rule (a class of nanlint.rules or its entry in the rule index: the same text)."""
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


from .server import command as _server_command  # noqa: E402  (pygls itself is imported only when it runs)

main.add_command(_server_command)

from .verify.command import verify as _verify_command  # noqa: E402  (torch is imported only when it runs)

main.add_command(_verify_command)
