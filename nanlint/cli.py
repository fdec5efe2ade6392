"""Command line: ``nanlint [check] PATHS``, ``nanlint rule CODE``, ``nanlint rules``."""
from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence

import click

from . import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .discovery import Target
    from .finding import Finding
    from .request import SettingsResolver

# Imports are kept to what each command needs: module level is click and nanlint's version only (`--version`
# imports nothing else); `--help`, `rules` and `rule` read the rule index (nanlint/registry.py) and import neither
# libcst nor a rule; a run whose files are all cache hits imports the configuration, discovery, the cache and the
# runner; the engine (libcst, the rules, the analysis) is imported where a file is analysed. `server` and
# `verify` are loaded when named (or listed by `--help`).

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


# The choices of --output-format and --confidence, spelled here so that defining the options imports nothing
# (tests/test_cli.py checks them against nanlint.report.FORMATTERS and nanlint.finding.CONFIDENCES).
OUTPUT_FORMATS = ("github", "json", "sarif", "text")
CONFIDENCE_CHOICES = ("high", "medium", "low")
# Commands defined in their own modules, imported when they run (or when `--help` lists them).
LAZY_COMMANDS = {"server": ("nanlint.server", "command"), "verify": ("nanlint.verify.command", "verify")}


class DefaultCommandGroup(click.Group):
    """``nanlint src/`` means ``nanlint check src/``; ``server`` and ``verify`` are imported when asked for."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in LAZY_COMMANDS
                        and args[0] not in ("--help", "-h", "--version")):
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            import importlib

            module, name = LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nanlint")
def main() -> None:
    """Find the lines of PyTorch code that make a loss or its gradients NaN/Inf."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (replaces the default set).")
@click.option("--extend-select", multiple=True, help="Rule codes or prefixes to add to the selection.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--preview/--no-preview", default=None, help="Enable preview rules.")
@click.option("--precision", default=None, help="Comma-separated dtypes the code runs in (float32,bfloat16,float16).")
@click.option("--output-format", type=click.Choice(OUTPUT_FORMATS), default="text", show_default=True)
@click.option("--confidence", type=click.Choice(CONFIDENCE_CHOICES), default=None,
              help="The lowest confidence to report: high, medium (the default) or low; lower findings are "
                   "dropped and do not fail the run (config key `confidence`).")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when problems are found.")
@click.option("--statistics", is_flag=True,
              help="Print only the number of findings per rule (a table; a JSON array with --output-format json).")
@click.option("--quiet", "-q", is_flag=True, help="Print the findings only: no summary line, no fix hints.")
@click.option("--output-file", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file instead of stdout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Use this pyproject.toml.")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--stdin-filename", default=None, help="The name to report for source read from stdin (`-`).")
@click.option("--respect-gitignore/--no-respect-gitignore", default=None,
              help="Skip files that .gitignore ignores when walking directories (default: yes; config key "
                   "`respect-gitignore`).")
@click.option("--force-exclude", is_flag=True, help="Apply excludes to paths passed explicitly (for pre-commit).")
@click.option("--fix/--no-fix", default=False, help="Apply safe fixes (and unsafe ones with --unsafe-fixes).")
@click.option("--unsafe-fixes/--no-unsafe-fixes", default=False,
              help="Also apply (or count as fixable) fixes that change numerics: eps guards, clamps, clipping.")
@click.option("--diff", is_flag=True, help="Print a unified diff of the fixes instead of writing them; exit 1 when "
                                          "there is a diff.")
@click.option("--add-noqa", is_flag=True,
              help="Write `# noqa: NANxxx` on the line of every current finding (to adopt nanlint on a codebase "
                   "with a clean start); exit 0.")
@click.option("--show-fixes/--no-show-fixes", default=False, help="List the findings that were (or would be) fixed.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="NANLINT_CACHE_DIR",
              help="Where to keep the result cache (default: `.nanlint_cache` beside the configuration file, "
                   "or in the working directory; config key `cache-dir`).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per usable core; 1 lints in this process).")
def check(paths: tuple[str, ...], select: tuple[str, ...], extend_select: tuple[str, ...], ignore: tuple[str, ...],
          preview: Optional[bool], precision: Optional[str], output_format: str, confidence: Optional[str],
          exit_zero: bool, statistics: bool, quiet: bool, output_file: Optional[str],
          config_path: Optional[str], isolated: bool, stdin_filename: Optional[str],
          respect_gitignore: Optional[bool], force_exclude: bool,
          fix: bool = False, unsafe_fixes: bool = False, diff: bool = False, add_noqa: bool = False,
          show_fixes: bool = False,
          no_cache: bool = False, cache_dir: Optional[str] = None, jobs: Optional[int] = None) -> None:
    """Lint PATHS (files or directories; default: the current directory; `-` for stdin)."""
    from .config import ConfigError
    from .finding import Finding
    from .request import Overrides, SettingsResolver

    try:
        resolver = SettingsResolver(Overrides.from_cli(select, extend_select, ignore, preview, precision,
                                                       respect_gitignore, confidence),
                                    config_path, isolated, suppressions=add_noqa or output_format == "sarif")
        first = _anchor(paths, stdin_filename)
        resolver.for_path(first)  # a bad configuration or option fails before any output
        out = Output(output_file, quiet)
        if add_noqa:
            if fix or diff or _is_stdin(paths, stdin_filename):
                raise ConfigError("--add-noqa works on files, without --fix or --diff")
            sys.exit(_add_noqa(paths, resolver, force_exclude, out))
        if fix or diff:
            sys.exit(_fix(paths, resolver, stdin_filename, force_exclude, unsafe_fixes, diff, show_fixes,
                          output_format, exit_zero, statistics, out))
        progress = Progress.wanted(output_format, quiet)
        findings, checked, internal = _run(paths, resolver, stdin_filename, force_exclude,
                                           None if no_cache else (cache_dir or _default_cache_dir(
                                               resolver.for_path(first))), jobs, progress)
    except ConfigError as exc:
        click.echo(f"nanlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # pragma: no cover - last resort, never a bare traceback
        click.echo(f"nanlint: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    findings.sort(key=Finding.sort_key)
    suppressed = [f for f in findings if f.extra.get("suppressed")]  # only asked for SARIF
    findings = [f for f in findings if not f.extra.get("suppressed")]
    if statistics:
        from .report.text import format_statistics

        out.report(format_statistics(findings, as_json=output_format == "json"))
    elif output_format == "sarif":
        from .report.sarif import format_sarif

        out.report(format_sarif(findings, checked, suppressed=suppressed))
    else:
        out.report(_format(output_format, findings, checked, unsafe_fixes, quiet=quiet))
    if internal:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if findings and not exit_zero else EXIT_CLEAN)


def _anchor(paths: Sequence[str], stdin_filename: Optional[str]) -> str:
    """The path whose settings stand for the run (the cache directory): stdin's name, the first path, or "."."""
    if (not paths or paths == ("-",)) and stdin_filename:
        return stdin_filename
    return paths[0] if paths and paths[0] != "-" else "."


def _is_stdin(paths: Sequence[str], stdin_filename: Optional[str]) -> bool:
    return paths == ("-",) or (not paths and stdin_filename is not None)


# -- fixes (--fix, --unsafe-fixes, --diff, --show-fixes) --------------------------------------------
def _format(output_format: str, findings: Sequence[Finding], checked: int, unsafe_fixes: bool,
            fixed: Optional[int] = None, quiet: bool = False) -> str:
    if output_format == "text":
        from .report.text import format_text

        return format_text(findings, checked, unsafe_fixes=unsafe_fixes, fixed=fixed, summary=not quiet)
    from .report import FORMATTERS

    return FORMATTERS[output_format](findings, checked)


class Output:
    """Where the report goes: stdout, or ``--output-file``; ``--quiet`` silences the side messages."""

    def __init__(self, path: Optional[str], quiet: bool) -> None:
        self.path = path
        self.quiet = quiet
        self._written = False

    def report(self, text: str, err: bool = False) -> None:
        """The report proper (findings, table, diff); appended to the output file after its first write."""
        if self.path is None or err:
            click.echo(text, nl=False, err=err)
            return
        with open(self.path, "a" if self._written else "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        self._written = True

    def note(self, text: str) -> None:
        """A message for the person at the terminal (stderr); nothing under ``--quiet``."""
        if not self.quiet:
            click.echo(text, nl=False, err=True)


class Progress:
    """A progress bar on stderr for long runs: only when stderr is a terminal, the report is text, and the run
    has taken more than ``DELAY`` seconds (so a pre-commit batch, CI, JSON and SARIF never see one)."""

    DELAY = 1.0

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic, stream: Any = None) -> None:
        self.total = total
        self.clock = clock
        self.stream = stream
        self.start = clock()
        self.done = 0
        self.bar: Any = None

    @staticmethod
    def wanted(output_format: str, quiet: bool, stream: Any = None) -> bool:
        stream = stream if stream is not None else sys.stderr
        return (output_format == "text" and not quiet and not os.environ.get("CI")
                and bool(getattr(stream, "isatty", lambda: False)()))

    def advance(self) -> None:
        self.done += 1
        if self.bar is None and self.done < self.total and self.clock() - self.start > self.DELAY:
            self.bar = click.progressbar(length=self.total, label="Linting", file=self.stream or sys.stderr,
                                         show_pos=True)
            self.bar.__enter__()
            self.bar.update(self.done)
        elif self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _fix(paths: Sequence[str], resolver: SettingsResolver, stdin_filename: Optional[str], force_exclude: bool,
         unsafe: bool, dry_run: bool, show_fixes: bool, output_format: str, exit_zero: bool,
         statistics: bool, out: Output) -> int:
    """``--fix`` (write) or ``--diff`` (print); returns the exit status."""
    from .discovery import discover
    from .files import decode_source, file_error
    from .finding import Finding
    from .fixes import FileFix, finish, fix_file, fix_source
    from .notebook import fix_notebook_file, is_notebook
    from .report.text import format_fixed, format_statistics, format_unfixable

    results: list[FileFix] = []
    stdin_text: Optional[str] = None
    if _is_stdin(paths, stdin_filename):
        name = stdin_filename or "-"
        if not (force_exclude and stdin_filename and resolver.for_path(name).is_excluded_with_parents(name)):
            data = sys.stdin.buffer.read()
            source, _, error = decode_source(name, data)
            if error is not None or source is None:
                results.append(FileFix(name, findings=[error] if error else []))
            else:
                outcome = fix_source(name, source, resolver.request_for(name), unsafe,
                                     resolver.for_path(name).confidence)
                results.append(finish(outcome, None, None, "utf-8", write=False))
                stdin_text = outcome.source
    else:
        for target in discover(paths, resolver.for_path, force_exclude):
            if target.missing:
                results.append(FileFix(target.display, findings=[file_error(target.display,
                                                                            "no such file or directory")]))
                continue
            fixer = fix_notebook_file if is_notebook(target.path) else fix_file
            results.append(fixer(target.path, target.display, resolver.request_for(target.path), unsafe,
                                 write=not dry_run, lowest=resolver.for_path(target.path).confidence))
    lowest = {r.display: resolver.for_path(r.display).confidence for r in results}
    remaining = sorted((f for r in results for f in _shown(r.findings, lowest[r.display])), key=Finding.sort_key)
    fixed = sorted((f for r in results for f in r.fixed), key=Finding.sort_key)
    for result in results:
        for failure in (result.outcome.failed if result.outcome else ()):
            f = failure.finding
            click.echo(f"nanlint: warning: {f.location()}: {f.code} fix not applied: {failure.reason}",
                       err=True)
        if result.error is not None:
            click.echo(f"nanlint: error: {result.display}: not fixed: {result.error}", err=True)
    internal = any(r.internal_error for r in results)
    errors = any(r.error is not None for r in results)
    if dry_run:
        diffs = "".join(r.diff for r in results)
        out.report(diffs)
        hidden = sum(1 for f in remaining if f.fix is not None and f.fix.applicability == "unsafe") if not unsafe else 0
        would = f"Would fix {len(fixed)} problem{'s' if len(fixed) != 1 else ''}" if fixed else "No fixes to apply"
        more = f" ({hidden} more with `--unsafe-fixes`)" if hidden else ""
        out.note(f"{would}{more}.\n")
        if show_fixes:
            out.note(format_fixed(fixed, "Would fix"))
        if internal or errors:
            return EXIT_ERROR
        return EXIT_FINDINGS if diffs and not exit_zero else EXIT_CLEAN
    if statistics:
        report = format_statistics(remaining, as_json=output_format == "json")
    else:
        report = _format(output_format, remaining, len(results), unsafe, fixed=len(fixed), quiet=out.quiet)
    if stdin_text is not None:
        click.echo(stdin_text, nl=False)  # the fixed source goes to stdout, the report to stderr (like ruff)
        out.report(report, err=out.path is None)
    else:
        out.report(report)
    if show_fixes:
        side = stdin_text is not None or output_format != "text" or out.path is not None
        text = format_fixed(fixed) + format_unfixable(remaining)
        if side:
            out.note(text)
        else:
            out.report(text)
    if internal or errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if remaining and not exit_zero else EXIT_CLEAN


def _add_noqa(paths: Sequence[str], resolver: SettingsResolver, force_exclude: bool, out: Output) -> int:
    from .discovery import discover
    from .noqa import add_noqa_file

    added = files = 0
    status = EXIT_CLEAN
    for target in discover(paths, resolver.for_path, force_exclude):
        if target.missing:
            click.echo(f"nanlint: error: {target.display}: no such file or directory", err=True)
            status = EXIT_ERROR
            continue
        result = add_noqa_file(target.path, target.display, resolver)
        if result.error is not None:
            click.echo(f"nanlint: error: {target.display}: no noqa added: {result.error}", err=True)
            status = EXIT_ERROR
        added += result.added
        files += bool(result.added)
    out.note(f"Added {added} noqa directive{'s' if added != 1 else ''} in {files} file{'s' if files != 1 else ''}.\n")
    return status


def _shown(findings: Iterable[Finding], lowest: str) -> list[Finding]:
    """The findings a report shows: those at or above the file's lowest confidence (``--confidence``)."""
    from .finding import at_least

    return [f for f in findings if at_least(f.confidence, lowest)]


def _default_cache_dir(settings: Settings) -> str:
    from .cache import CACHE_DIR_NAME

    return settings.cache_dir or os.path.join(settings.root, CACHE_DIR_NAME)


def _run(paths: Sequence[str], resolver: SettingsResolver, stdin_filename: Optional[str], force_exclude: bool,
         cache_dir: Optional[str] = None, jobs: Optional[int] = None, progress: bool = False
         ) -> tuple[list[Finding], int, bool]:
    """Lint the files (through the cache and a process pool, see runner.py); stdin in this process.
    ``progress``: show :class:`Progress` (the targets are then listed before linting starts, for the total)."""
    from .files import FileResult, decode_source

    findings: list[Finding] = []
    checked = 0
    internal = False
    lowest: dict[str, str] = {}  # display path -> the lowest confidence its settings report
    bar: Optional[Progress] = None
    if _is_stdin(paths, stdin_filename):
        results: Iterable[FileResult] = []
        name = stdin_filename or "-"
        if not (force_exclude and stdin_filename and resolver.for_path(name).is_excluded_with_parents(name)):
            source, _, error = decode_source(name, sys.stdin.buffer.read())
            from .engine import lint_source

            results = [FileResult(name, [error]) if error else lint_source(name, source or "",
                                                                           resolver.request_for(name))]
    else:
        from .cache import Cache
        from .discovery import discover
        from .runner import Job, lint_files

        targets: Iterable[Target] = discover(paths, resolver.for_path, force_exclude)
        if progress:
            targets = list(targets)
            bar = Progress(len(targets))

        def work() -> Iterator[Job]:
            for target in targets:
                lowest[target.display] = resolver.for_path(target.path).confidence
                yield Job(target.path, target.display, resolver.request_for(target.path), target.missing)

        results = lint_files(work(), jobs, Cache(cache_dir) if cache_dir is not None else None)
    try:
        for result in results:
            checked += 1
            findings.extend(_shown(result.findings, lowest.get(result.path)
                                   or resolver.for_path(result.path).confidence))
            internal = internal or result.internal_error
            if bar is not None:
                bar.advance()
    finally:
        if bar is not None:
            bar.close()
    return findings, checked, internal


@main.command()
@click.argument("code")
def rule(code: str) -> None:
    """Print the documentation of rule CODE (e.g. NAN101)."""
    from .docs import rule_text
    from .registry import ALL_RULES, BY_CODE

    found = BY_CODE.get(code.upper())
    if found is None:
        matches = [r for r in ALL_RULES if r.name == code]
        if not matches:
            click.echo(f"nanlint: error: unknown rule `{code}` (see `nanlint rules`)", err=True)
            sys.exit(EXIT_ERROR)
        found = matches[0]
    click.echo(rule_text(found))


@main.command(name="truth-table")
@click.option("--write", "mode", flag_value="write", help="Write the table to PATH.")
@click.option("--check", "mode", flag_value="check", help="Exit 1 when PATH differs from what this torch measures.")
@click.argument("path", required=False, default="docs/numerics.md", type=click.Path(dir_okay=False))
def truth_table_command(mode: Optional[str], path: str) -> None:
    """Run every rule's witnesses with the installed torch and print the truth table (docs/numerics.md)."""
    try:
        from .truth_table import generate

        status, message = generate(path, mode or "print")
    except ImportError as exc:
        click.echo(f"nanlint: error: the truth table runs the witnesses with torch: pip install torch ({exc})",
                   err=True)
        sys.exit(EXIT_ERROR)
    click.echo(message, nl=False, err=mode is not None)
    sys.exit(status)


@main.command(name="rules")
@click.option("--all", "show_all", is_flag=True, default=True, hidden=True)
def rules_command(show_all: bool) -> None:
    """List every rule: code, name, default status, fix (availability and applicability), summary."""
    from .docs import fix_contract
    from .registry import ALL_RULES

    width = max(len(r.name) for r in ALL_RULES)
    fix_width = max(len(fix_contract(r)) for r in ALL_RULES)
    for r in ALL_RULES:
        status = "preview" if r.preview else "on"
        click.echo(f"{r.code}  {r.name:<{width}}  {status:<7}  {fix_contract(r):<{fix_width}}  {r.summary}")

