"""``nanlint verify``: the click command. torch is imported only when the command runs."""
from __future__ import annotations

import os
import sys
from typing import Optional

import click

from . import VerifyError

EXIT_ERROR = 2


@click.command(name="verify", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True,
              help="Stop the script after this many optimizer steps; in a script without an optimizer, after this "
                   "many backward passes (each `backward()` or `torch.autograd.grad` call).")
@click.option("--confidence", type=click.Choice(("high", "medium", "low")), default=None,
              help="The lowest confidence of the findings verified, as for `nanlint check` (default: the "
                   "configuration's `confidence`, else medium).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on standard error.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True,
              help="auto: CUDA when present. cpu hides CUDA from the script; cuda requires it. The choice is "
                   "also in the environment as NANLINT_VERIFY_DEVICE.")
@click.option("--inject/--no-inject", default=True, show_default=True,
              help="Confirm findings the run does not trigger by injecting each rule's danger value.")
@click.option("--precise", is_flag=True,
              help="Trace every step with the precise tracer instead of replaying the first failing one.")
@click.option("--output-format", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the report to this file instead of standard output.")
def verify(script: str, script_args: tuple[str, ...], steps: int, confidence: Optional[str], quiet: bool,
           device: str, inject: bool, precise: bool, output_format: str, output: Optional[str]) -> None:
    """Run SCRIPT (as `python SCRIPT ARGS` would) and confirm each static finding at runtime.

    Each finding in SCRIPT and in the local modules it imports is reported as
    confirmed (NaN/Inf appeared at that line, by itself or when nanlint injected
    the rule's danger value), guarded (the injected value was observed and the
    run stayed finite), inconclusive (the line ran but nothing could be judged,
    with the reason) or not-reached (the line never ran), with the evidence;
    NaN/Inf origins that no finding predicted are listed too. The findings are
    those `nanlint check` reports with the same configuration. Progress (a line
    per step, and each replay) goes to standard error. Pass the script's own
    arguments after `--`:

    \b
        nanlint verify train.py --steps 5 -- --lr 3e-4 --batch-size 32

    Exit status: 0 nothing confirmed, 1 a finding confirmed or a NaN/Inf origin
    seen, 2 the script itself failed (its traceback is shown) or nanlint could not run.
    """
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch initialises CUDA
    try:
        from ._torch import require_torch

        require_torch()
        from .runner import verify_script

        script_stdout = sys.stderr if output_format != "text" and output is None else None
        report = verify_script(script, script_args, steps=steps, device=device, inject=inject, precise=precise,
                               script_stdout=script_stdout, keep_group=True, confidence=confidence,
                               progress=None if quiet else _progress)
    except VerifyError as exc:
        click.echo(f"nanlint verify: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    from .distributed import Dist

    dist = Dist.current()
    if report.rank != 0:
        code = dist.broadcast(None)
        _shutdown()
        sys.exit(code)
    if report.script_error is not None:
        click.echo(report.text(), err=True, nl=False)
        if output_format != "text" or output is not None:
            _emit(report, output_format, output)
    else:
        _emit(report, output_format, output)
        if output is not None:
            click.echo(f"nanlint verify: report written to {output} ({report.summary()})", err=True)
    code = report.exit_code
    dist.broadcast(code)
    _shutdown()
    sys.exit(code)


def _progress(line: str) -> None:
    click.echo(f"nanlint verify: {line}", err=True)


def _emit(report: object, output_format: str, output: Optional[str]) -> None:
    from .report import FORMATS

    text = FORMATS[output_format](report)
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)


def _shutdown() -> None:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
