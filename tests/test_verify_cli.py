"""``nanlint verify`` from the command line, ``nanlint.watch()``, the pytest plugin, torchrun, and torch-free imports."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nanlint.cli import main

pytest_plugins = ("pytester",)

try:
    import torch
except ImportError:  # the torch-free tests still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# -- no torch needed ----------------------------------------------------------------------------

def test_static_imports_do_not_import_torch() -> None:
    code = ("import sys, nanlint, nanlint.cli, nanlint.verify, nanlint.verify.command, "
            "nanlint.verify.pytest_plugin, nanlint.verify.report\n"
            "nanlint.watch  # the lazy attribute resolves without importing torch\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n")
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_missing_torch_gives_a_clear_message(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('never runs')\n")
    code = ("import sys\nsys.modules['torch'] = None  # `import torch` now fails, as without torch\n"
            "from nanlint.cli import main\nmain(['verify', sys.argv[1]])\n")
    result = subprocess.run([PYTHON, "-c", code, str(script)], cwd=ROOT, env=_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "nanlint verify: error: nanlint verify needs PyTorch (the build you train with), and none is importable "
        "here: install it into this environment, e.g. `pip install torch` (CPU-only: `pip install torch "
        "--index-url https://download.pytorch.org/whl/cpu`); nanlint's `verify` extra does not install torch")
    assert "never runs" not in result.stdout


def test_watch_without_torch_raises_the_same_message() -> None:
    code = ("import sys\nsys.modules['torch'] = None\nimport nanlint\n"
            "try:\n    nanlint.watch()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("VerifyError nanlint verify needs PyTorch"), result.stdout + result.stderr


# -- with torch --------------------------------------------------------------------------------

@needs_torch
def test_script_failure_exits_2_with_the_scripts_traceback(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # restored afterwards
    result = CliRunner().invoke(main, ["verify", "fixtures/verify/raises.py", "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stdout == ""
    progress = [line for line in result.stderr.splitlines() if line.startswith("nanlint verify: ")]
    assert [re.sub(r" \(\d+\.\d s\)$", "", line) for line in progress] == [
        "nanlint verify: step 1/3 done", "nanlint verify: step 2/3 done"]  # with the time elapsed
    err = [line for line in result.stderr.splitlines() if not line.startswith("nanlint verify: ")]
    assert err[0] == "Traceback (most recent call last):"
    assert "ValueError: corrupt shard: batch 2 has 7 columns, expected 8" in err
    frames = [line for line in err if line.strip().startswith("File ")]
    assert [f.split(", in ")[-1] for f in frames] == ["<module>", "main", "load_batch"]
    assert all("fixtures/verify/raises.py" in f for f in frames)
    assert not any("site-packages" in line or "nanlint/verify" in line or "click" in line for line in err)
    assert err[-1] == "nanlint verify fixtures/verify/raises.py: the script failed (after 2 steps); nothing was verified"


@needs_torch
def test_json_output_follows_the_schema(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["verify", "fixtures/verify/rmse.py", "--output-format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"steps", "findings", "origins"}
    assert data["steps"] == {"run": 3, "unit": "step"}
    for finding in data["findings"]:
        assert set(finding) == {"code", "path", "line", "column", "status", "reason", "evidence"}
        assert finding["status"] in ("confirmed", "guarded", "inconclusive", "not-reached")
        assert (finding["reason"] is not None) == (finding["status"] == "inconclusive")
        if finding["evidence"] is not None:
            assert set(finding["evidence"]) == {"how", "op", "phase", "kind", "dtype", "step", "fix_verified",
                                                "fix"}
    for origin in data["origins"]:
        assert set(origin) == {"path", "line", "column", "op", "phase", "kind", "dtype", "step", "finding"}
    nan201 = [f for f in data["findings"] if f["code"] == "NAN201"]
    assert nan201 == [{"code": "NAN201", "path": "fixtures/verify/rmse.py", "line": 19, "column": 12,
                       "status": "confirmed", "reason": None, "evidence": {
                           "how": "natural", "op": "torch.sqrt", "phase": "backward", "kind": "inf",
                           "dtype": "float32", "step": 0, "fix_verified": nan201[0]["evidence"]["fix_verified"],
                           "fix": None}}]
    assert data["origins"] == [{"path": "fixtures/verify/rmse.py", "line": 19, "column": 12, "op": "torch.sqrt",
                                "phase": "backward", "kind": "inf", "dtype": "float32", "step": 0,
                                "finding": "NAN201"}]


@needs_torch
def test_clean_script_exits_0_and_html_goes_to_the_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["verify", "fixtures/verify/clean.py", "--steps", "2", "--output-format",
                                       "html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"report written to {out}" in result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "No static finding" in page and "No NaN or Inf" in page


@needs_torch
def test_script_runs_as_main_with_its_arguments_and_local_imports(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "helper.py").write_text("SCALE = 2.0\n")
    (tmp_path / "train.py").write_text(textwrap.dedent("""\
        import sys
        import torch
        from helper import SCALE

        assert __name__ == "__main__"
        assert sys.argv[1:] == ["--lr", "0.5", "--name", "x y"], sys.argv
        lr = float(sys.argv[2])
        w = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.SGD([w], lr=lr)
        for step in range(100):
            opt.zero_grad()
            loss = (w * SCALE).pow(2).sum()
            if not torch.isfinite(loss):
                raise FloatingPointError(step)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([w], 1.0)
            opt.step()
        print("ran to the end")
        """))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["verify", "train.py", "--steps", "4", "--", "--lr", "0.5", "--name", "x y"])
    assert result.exit_code == 0, result.output
    assert "ran to the end" not in result.stdout  # stopped after 4 optimizer steps
    assert result.stdout.startswith("nanlint verify train.py: 4 steps on ")
    assert "helper" not in sys.modules  # local modules are not left behind


@needs_torch
@pytest.mark.skipif(torch is not None and torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_device_cuda_without_cuda_is_an_error() -> None:
    result = CliRunner().invoke(main, ["verify", "fixtures/verify/clean.py", "--device", "cuda"])
    assert result.exit_code == 2
    assert "no CUDA device is available" in result.stderr


@needs_torch
def test_watch_api_reports_the_origin_and_its_finding(tmp_path: Path) -> None:
    import nanlint

    source = tmp_path / "losses.py"
    source.write_text(textwrap.dedent("""\
        import torch
        import torch.nn.functional as F


        def rmse(pred, target):
            mse = F.mse_loss(pred, target)
            return torch.sqrt(mse)
        """))
    sys.path.insert(0, str(tmp_path))
    try:
        import losses  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("losses", None)
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nanlint.watch() as w:
        for _ in range(2):
            opt.zero_grad()
            losses.rmse(model(torch.ones(4, 2)), torch.zeros(4, 1)).backward()
            opt.step()
    report = w.report()
    assert [(Path(o.path).name, o.line, o.op, o.phase, o.kind, o.step, o.finding) for o in report.origins] == [
        ("losses.py", 7, "torch.sqrt", "backward", "inf", 0, "NAN201")]
    assert [(f.code, f.line, f.status) for f in report.findings] == [("NAN201", 7, "confirmed")]
    assert w.failed_step == 0


@needs_torch
def test_watch_is_quiet_on_finite_code_and_deliberate_masks() -> None:
    import nanlint

    with nanlint.watch() as w:
        scores = torch.randn(2, 3, requires_grad=True)
        mask = torch.tensor([[True, False, False], [False, False, True]])
        torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1).sum().backward()
    assert w.report().origins == []
    assert w.report().exit_code == 0


@needs_torch
def test_pytest_plugin_fails_a_test_that_makes_nan(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model=textwrap.dedent("""\
        import pytest
        import torch


        def test_rmse_of_a_perfect_fit():
            pred = torch.ones(4, requires_grad=True)
            loss = torch.sqrt(torch.nn.functional.mse_loss(pred, torch.ones(4)))
            loss.backward()


        def test_finite():
            x = torch.randn(4, requires_grad=True)
            (x * 2).sum().backward()


        @pytest.mark.nanlint_allow
        def test_nan_on_purpose():
            assert torch.isnan(torch.log(torch.tensor(-1.0)))


        def test_log_of_zero():
            torch.log(torch.zeros(2))
        """))
    # an installed nanlint registers the plugin through its pytest11 entry point; a source checkout does not
    from importlib.metadata import entry_points

    installed = any(ep.value == "nanlint.verify.pytest_plugin" for ep in entry_points(group="pytest11"))
    plugin = (["-p", "nanlint.verify.pytest_plugin"] if not installed else []) + ["-p", "no:cacheprovider"]
    result = pytester.runpytest_inprocess(*plugin, "--nanlint-watch")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*nanlint: this test produced a NaN/Inf",
        "*test_model.py:7: backward Inf from `torch.sqrt` (SqrtBackward0), float32, step 0 (predicted by NAN201)",
        "*test_model.py:22: forward Inf from `torch.log`, float32, step 0",
    ])
    plain = pytester.runpytest_inprocess(*plugin)  # without the option the plugin does nothing
    plain.assert_outcomes(passed=4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@needs_torch
def test_torchrun_gloo_two_ranks_merged_by_rank_0(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = [PYTHON, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(_free_port()), "-m", "nanlint", "verify", "fixtures/verify/ddp_norm.py",
            "--device", "cpu", "--output-format", "json", "-o", str(out)]
    result = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode != 0  # each rank exits 1: a finding was confirmed
    data = json.loads(out.read_text())
    statuses = {(f["code"], f["line"]): (f["status"], f["evidence"]["how"], f["evidence"]["op"], f["evidence"]["step"])
                for f in data["findings"]}
    assert statuses[("NAN101", 19)] == ("confirmed", "natural", "Tensor.div", 1)
    # only rank 1 divided a zero row; rank 0 received the NaN through the all-reduce, which is not an origin
    assert data["origins"] == [{"path": "fixtures/verify/ddp_norm.py", "line": 19, "column": 25, "op": "Tensor.div",
                                "phase": "forward", "kind": "nan", "dtype": "float32", "step": 1,
                                "finding": "NAN101"}]
