"""The verifier's parts: the precise tracer, the injections, spans and probes, the report model."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from nanlint.verify.report import CONFIRMED, GUARDED, INCONCLUSIVE, NOT_REACHED, Evidence, FindingResult, Origin, Report
from nanlint.request import Overrides, SettingsResolver
from nanlint.verify.source import SourceFile, Span, instrument, load_source, map_span, norm_path

THIS = norm_path(__file__)


def _line_of(fragment: str) -> int:
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    matches = [i for i, line in enumerate(lines, 1) if fragment in line and "_line_of(" not in line]
    assert len(matches) == 1, matches
    return matches[0]


# -- spans, probes, mapping (no torch) --------------------------------------------------------------

def test_char_and_byte_columns_round_trip_on_non_ascii_lines() -> None:
    source = SourceFile("/x.py", "x.py", "ŷ = x / x.norm()\n")
    span = source.span(1, 5, 1, 17)  # characters: `x / x.norm()`
    assert (span.col, span.end_col) == (5, 17)  # bytes: `ŷ` is two bytes
    assert source.text_of(span) == "x / x.norm()"
    assert source.char_col(1, span.col) == 4


def test_parentheses_around_a_span_are_dropped() -> None:
    source = SourceFile("/x.py", "x.py", "y = ((a - b) / c)\n")
    span = source.span(1, 5, 1, 18)
    assert source.text_of(span) == "(a - b) / c"


def test_probes_keep_every_position(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        def f(x):
            y = x + 1
            if y > 2:
                return y / 0
            return y
        """)
    filename = str(tmp_path / "m.py")
    division = Span(filename, 4, 15, 4, 20)
    tree = instrument(text, filename, [(7, division)])
    seen: list[tuple] = []
    namespace: dict[str, Any] = {"__nanlint_probe__": seen.append}
    exec(compile(tree, filename, "exec"), namespace)
    assert namespace["f"](0) == 1 and seen == []
    with pytest.raises(ZeroDivisionError) as info:
        namespace["f"](5)
    assert seen == [(7,)]
    assert info.traceback[-1].lineno + 1 == 4  # pytest's lineno is 0-based
    plain: dict[str, Any] = {}
    exec(compile(text, filename, "exec"), plain)
    positions = {p for p in plain["f"].__code__.co_positions() if p[0] is not None}
    probed = {p for p in namespace["f"].__code__.co_positions() if p[0] is not None}
    assert positions <= probed  # the probe adds its own positions, and changes none of the code's


def test_map_span_follows_a_fix_that_inserts_a_line() -> None:
    old = SourceFile("/x.py", "x.py", "a = 1\ny = x / n\n")
    new = SourceFile("/x.py", "x.py", "a = 1\nn = n.clamp_min(1e-4)\ny = x / n\n")
    assert map_span(old, new, Span("/x.py", 2, 4, 2, 9)) == Span("/x.py", 3, 4, 3, 9)
    gone = SourceFile("/x.py", "x.py", "a = 1\ny = x\n")
    assert map_span(old, gone, Span("/x.py", 2, 4, 2, 9)) is None


def test_map_span_follows_a_fix_that_adds_a_keyword_argument() -> None:
    # NAN102's fix: `x.std(dim=0)` -> `x.std(dim=0, correction=0).clamp_min(...)`: the same call, a longer span
    old = SourceFile("/x.py", "x.py", "y = x / x.std(dim=0)\n")
    new = SourceFile("/x.py", "x.py", "y = x / x.std(dim=0, correction=0).clamp_min(e)\n")
    assert map_span(old, new, Span("/x.py", 1, 8, 1, 20)) == Span("/x.py", 1, 8, 1, 34)
    other = SourceFile("/x.py", "x.py", "y = x / x.std(dim=0).clamp_min(e)\n")
    assert map_span(old, other, Span("/x.py", 1, 8, 1, 20)) == Span("/x.py", 1, 8, 1, 20)
    renamed = SourceFile("/x.py", "x.py", "y = x / x.std(dim=1, correction=0)\n")
    assert map_span(old, renamed, Span("/x.py", 1, 8, 1, 20)) is None


def test_report_json_and_exit_codes() -> None:
    report = Report("train.py")
    assert report.exit_code == 0
    assert report.to_json() == {"steps": {"run": 0, "unit": "step"}, "findings": [], "origins": []}
    report.findings.append(FindingResult("NAN101", "divide-by-norm", "m", "train.py", 3, 5, 3, 9, GUARDED,
                                         Evidence("injected", "Tensor.norm", None, None, "float32", 0)))
    assert report.exit_code == 0
    report.findings.append(FindingResult("NAN201", "sqrt-at-zero", "m", "train.py", 7, 5, 7, 9, NOT_REACHED))
    assert report.to_json()["findings"][1] == {"code": "NAN201", "path": "train.py", "line": 7, "column": 5,
                                              "status": "not-reached", "reason": None, "evidence": None}
    report.findings.append(FindingResult("NAN102", "divide-by-std", "m", "train.py", 8, 5, 8, 9, INCONCLUSIVE,
                                         Evidence("natural", step=0, detail="reached at step 0; why")))
    assert report.to_json()["findings"][2]["reason"] == "reached at step 0; why"
    assert report.counts() == {CONFIRMED: 0, GUARDED: 1, INCONCLUSIVE: 1, NOT_REACHED: 1}
    assert report.exit_code == 0  # inconclusive is not a failure, nor a pass: it is said
    assert '<span class="status inconclusive">inconclusive</span>' in report.html()
    assert "1 guarded, 1 inconclusive, 1 not reached" in report.text()
    del report.findings[2]
    report.origins.append(Origin("train.py", 9, 1, "torch.log", "forward", "inf", "float32", 0))
    assert report.exit_code == 1  # a NaN/Inf that no finding predicted still fails the run
    report.findings[0].status = CONFIRMED
    report.origins.clear()
    assert report.exit_code == 1
    report.script_error = "Traceback ..."
    assert report.exit_code == 2


# -- the tracer ---------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")

from nanlint.verify.injection import injection_for  # noqa: E402
from nanlint.verify.tracer import Tracer, WindowResult  # noqa: E402


def traced(fn: Callable[[], Any], injector: Any = None) -> WindowResult:
    tracer = Tracer()
    tracer.injector = injector
    with tracer:
        tracer.begin()
        if injector is not None:
            injector.armed = True
        fn()
        return tracer.end()


def test_two_calls_on_one_line_are_told_apart() -> None:
    x, z = torch.zeros(3), torch.ones(3)
    result = traced(lambda: torch.sqrt(z) + torch.log(x))  # @two-calls
    origin = result.forward
    assert origin is not None and (origin.op, origin.kind, origin.phase) == ("torch.log", "inf", "forward")
    line = _line_of("# @two-calls")
    text = Path(__file__).read_text(encoding="utf-8").splitlines()[line - 1]
    assert origin.span == Span(THIS, line, text.index("torch.log(x)"), line, text.index("torch.log(x)") + 12)


def test_deliberate_inf_fill_is_not_an_origin_but_a_float16_overflow_is() -> None:
    scores = torch.randn(2, 3)
    mask = torch.tensor([[True, False, False], [False, True, False]])
    assert traced(lambda: torch.softmax(scores.masked_fill(mask, float("-inf")), -1)).forward is None
    big = torch.full((2,), 300.0, dtype=torch.float16)
    origin = traced(lambda: big * big).forward  # 90000 > 65504
    assert origin is not None and (origin.op, origin.kind, origin.dtype) == ("Tensor.mul", "inf", "float16")


def test_nan_made_from_a_deliberate_inf_names_the_fill() -> None:
    scores = torch.randn(2, 3)
    mask = torch.tensor([[True, True, True], [False, True, False]])

    def attention() -> None:
        filled = scores.masked_fill(mask, float("-inf"))  # @fill
        torch.softmax(filled, dim=-1)  # @softmax

    origin = traced(attention).forward
    assert origin is not None and (origin.op, origin.kind) == ("torch.softmax", "nan")
    assert origin.span is not None and origin.span.line == _line_of("# @softmax")
    assert origin.via is not None and origin.via.line == _line_of("# @fill") and origin.via_op == "Tensor.masked_fill"


def test_backward_origin_is_the_node_that_makes_inf_from_finite_gradients() -> None:
    x = torch.zeros(4, requires_grad=True)

    def hand_norm() -> None:
        squares = x.pow(2).sum()
        torch.sqrt(squares).backward()  # @hand-norm

    result = traced(hand_norm)
    assert result.forward is None
    assert x.grad is not None
    origin = result.backward
    assert origin is not None and (origin.op, origin.node, origin.kind) == ("torch.sqrt", "SqrtBackward0", "inf")
    assert origin.span is not None and origin.span.line == _line_of("# @hand-norm")
    assert bool(torch.isnan(x.grad).all())  # PowBackward0 turned inf * 0 into NaN: not the origin


def test_nodes_carry_the_op_and_span_that_made_them() -> None:
    x = torch.ones(3, requires_grad=True)
    box: list[Any] = []
    traced(lambda: box.append(torch.sqrt(x * 2)))  # @stamp
    op, span = box[0].grad_fn.metadata["nanlint"]
    assert op == "torch.sqrt" and span.path == THIS and span.line == _line_of("# @stamp")
    inner = box[0].grad_fn.next_functions[0][0]  # MulBackward0 of `x * 2`: its own op
    assert inner.metadata["nanlint"][0] == "Tensor.mul"


def test_in_place_ops_are_checked_against_their_input_before_the_call() -> None:
    x = torch.ones(3)
    origin = traced(lambda: x.div_(torch.zeros(3))).forward
    assert origin is not None and (origin.op, origin.kind) == ("Tensor.div_", "inf")


def test_a_value_non_finite_before_the_window_enters_as_an_input() -> None:
    data = torch.tensor([1.0, float("nan")])
    origin = traced(lambda: data * 2).forward
    assert origin is not None and origin.input_origin and origin.kind == "nan"


# -- injections on real findings ------------------------------------------------------------------------

def _module(tmp_path: Path, text: str) -> tuple[ModuleType, SourceFile]:
    path = tmp_path / "user_code.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    # every rule and confidence (NAN204 is a preview rule): these tests are about the injections
    settings = SettingsResolver(Overrides(preview=True, confidence="low")).for_path(str(path))
    source = load_source(str(path), "user_code.py", settings)
    assert source is not None
    spec = importlib.util.spec_from_file_location("user_code", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, source


def _inject(source: SourceFile, code: str) -> Any:
    finding = next(f for f in source.findings if f.code == code)
    injection = injection_for(code, source, source.finding_span(finding), source.target_span(finding))
    assert injection is not None
    return injection


@pytest.mark.filterwarnings("ignore:std.*degrees of freedom")
@pytest.mark.parametrize(("code", "text", "call", "what"), [
    ("NAN101", """\
        import torch


        def unit(x):
            n = x.norm(dim=-1, keepdim=True)
            return x / n
        """, lambda m: m.unit(torch.randn(3, 4)), "element 0 of `n` read as 0 by `Tensor.div`"),
    ("NAN102", """\
        import torch


        def standardise(x):
            return (x - x.mean(0)) / x.std(0)
        """, lambda m: m.standardise(torch.randn(5, 3)), "element 0 of the result of `Tensor.std` set to 0"),
    ("NAN402", """\
        import torch


        def attend(scores, pad):
            return torch.softmax(scores.masked_fill(pad, float("-inf")), dim=-1)
        """, lambda m: m.attend(torch.randn(2, 3), torch.tensor([[False, False, True], [False, True, True]])),
     "row 0 of the mask of `Tensor.masked_fill` fully masked"),
    ("NAN204", """\
        import torch


        def stats_pool(x):
            return torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)
        """, lambda m: m.stats_pool(torch.randn(2, 5, 4)), "`Tensor.std` reduced over one element"),
])
def test_injection_makes_the_hazard_real(code: str, text: str, call: Callable[[ModuleType], Any], what: str,
                                         tmp_path: Path) -> None:
    module, source = _module(tmp_path, text)
    finite = traced(lambda: call(module))
    assert finite.forward is None and finite.backward is None
    injection = _inject(source, code)
    result = traced(lambda: call(module), injector=injection)
    assert injection.fired is not None and injection.fired.what == what
    assert result.forward is not None and result.forward.span is not None
    assert result.forward.span.path == source.path
    assert result.forward.kind in ("nan", "inf")


def test_acos_of_a_cosine_injected_at_exactly_one_has_an_infinite_gradient(tmp_path: Path) -> None:
    module, source = _module(tmp_path, """\
        import torch
        import torch.nn.functional as F


        def angle(a, b):
            return torch.acos(F.cosine_similarity(a, b, dim=-1))
        """)
    a = torch.randn(3, 4, requires_grad=True)
    injection = _inject(source, "NAN404")
    result = traced(lambda: module.angle(a, torch.randn(3, 4)).sum().backward(), injector=injection)
    assert injection.fired is not None and "exactly 1" in injection.fired.what
    assert result.forward is None  # acos(1) = 0
    assert result.backward is not None and (result.backward.op, result.backward.kind) == ("torch.acos", "inf")


def test_sentinel_confirms_an_inf_norm_element_wise() -> None:
    from nanlint.verify.sentinel import Sentinel

    big = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    optimizer = torch.optim.SGD([big], lr=0.1)
    sentinel = Sentinel()
    big.grad = torch.full((4,), 40000.0, dtype=torch.float16)  # every element finite, the 2-norm overflows
    sentinel.loss(torch.tensor(2.0))
    sentinel.grads(optimizer)
    flags = sentinel.read()
    assert not flags.bad and flags.losses == 1
    big.grad = torch.tensor([1.0, float("inf"), 2.0, 3.0], dtype=torch.float16)
    sentinel.loss(torch.tensor(float("nan")))
    sentinel.grads(optimizer)
    flags = sentinel.read()
    assert (flags.loss_nan, flags.loss_inf, flags.grad_nan, flags.grad_inf) == (True, False, False, True)
