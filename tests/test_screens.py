"""Screens are necessary, and the second-stage screen (nanlint/screening.py) changes nothing.

* The screened path (second stage on) reports exactly what the plain path (whole
  file parsed) reports, on every fixture and on a sample of real code.
* With every screen switched off, each rule's findings on that sample and on the
  fixtures lie where its screen says a finding can be: in a file its screen
  matches, and in a top-level definition the second stage keeps for it. So a
  file (or definition) whose screen says "nothing here" has no finding.
* The seed rules' screens match every spelling of their hazards that the rules
  understand (aliases, ``** 0.5`` written six ways, power towers...), and reject
  the common non-hazards they were tightened against.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import libcst
import pytest

from helpers import fixture_precision
from nanlint import engine, screening
from nanlint.engine import LintRequest, lint_source, screened_rules
from nanlint.finding import Finding
from nanlint.rules import ALL_RULES, BY_CODE

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "corpus_sample"
DEFAULT = tuple(r for r in ALL_RULES if not r.preview)
EVERYTHING = re.compile("")


def sources() -> list[Path]:
    return sorted([*ROOT.glob("fixtures/**/*.py"), *SAMPLE.rglob("*.py")])


def identity(findings: list[Finding]) -> list[tuple]:
    return [(f.code, f.message, f.line, f.column, f.end_line, f.end_column, f.fix)
            for f in sorted(findings, key=Finding.sort_key)]


def lint(source: str, rules, path: str = "m.py", second_stage: bool = True, precision=None) -> list[tuple]:
    saved = engine.SECOND_STAGE
    engine.SECOND_STAGE = second_stage
    try:
        return identity(lint_source(path, source, LintRequest(tuple(rules), precision)).findings)
    finally:
        engine.SECOND_STAGE = saved


# -- the screened path equals the plain path ------------------------------------------------------
SEED = tuple(BY_CODE[c] for c in ("NAN101", "NAN102", "NAN201", "NAN202", "NAN601", "NAN602"))


@pytest.mark.parametrize("rules", [ALL_RULES, DEFAULT, SEED], ids=["all-rules", "default-rules", "seed-rules"])
def test_screened_path_equals_plain_path(rules) -> None:
    compared = sliced = 0
    for path in sources():
        source = path.read_text(encoding="utf-8")
        precision = fixture_precision(source)
        plain = lint(source, rules, str(path), second_stage=False, precision=precision)
        assert lint(source, rules, str(path), second_stage=True, precision=precision) == plain, path
        compared += len(plain)
        found = screening.plan(source, screened_rules(rules, source), str(path))
        sliced += bool(found is not None and found.sliced)
    assert compared > 30 and sliced >= (5 if rules is SEED else 1)  # findings and sliced files were compared


def test_every_fixture_made_long_enough_to_slice_gives_the_same_findings() -> None:
    """Most fixtures are shorter than ``screening.MIN_LINES`` and are parsed whole: each one, with definitions
    no rule can fire in appended (``PAD``), is sliced, and the second stage must keep every finding."""
    compared = sliced = 0
    for path in sorted(ROOT.glob("fixtures/**/*.py")):
        source = path.read_text(encoding="utf-8") + PAD
        precision = fixture_precision(source)
        plain = lint(source, ALL_RULES, str(path), second_stage=False, precision=precision)
        assert lint(source, ALL_RULES, str(path), second_stage=True, precision=precision) == plain, path
        compared += len(plain)
        found = screening.plan(source, screened_rules(ALL_RULES, source, precision), str(path))
        sliced += bool(found is not None and found.sliced)
    assert compared > 300 and sliced > 100


@pytest.fixture
def no_screens(monkeypatch: pytest.MonkeyPatch) -> dict[str, re.Pattern]:
    """Every rule runs everywhere; returns the real screens."""
    real = {rule.code: rule.screen for rule in ALL_RULES}
    for rule in ALL_RULES:
        monkeypatch.setattr(rule, "screen", EVERYTHING)
    return real


def test_findings_lie_where_the_screens_say(no_screens: dict[str, re.Pattern]) -> None:
    """On the fixtures and the real-code sample, with screens off: every finding of a rule is in a file its
    screen matches and in a part of the file the second stage keeps for that rule alone."""
    checked = 0
    quiet_files = 0
    for path in sources():
        source = path.read_text(encoding="utf-8")
        precision = fixture_precision(source)
        saved, engine.SECOND_STAGE = engine.SECOND_STAGE, False  # the whole file, every rule everywhere
        try:
            found = lint_source(str(path), source, LintRequest(ALL_RULES, precision)).findings
        finally:
            engine.SECOND_STAGE = saved
        by_rule: dict[str, list[int]] = {}
        for f in found:
            by_rule.setdefault(f.code, []).append(f.line)
        for rule in ALL_RULES:
            if rule.code == engine.UNUSED_NOQA_CODE:
                continue  # not a tree walk: the engine checks it after the others (no screen contract)
            screen = no_screens[rule.code]
            lines = by_rule.get(rule.code, [])
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(rule, "screen", screen)
                if not screen.search(source):
                    assert not lines, f"{rule.code} fires in {path} but its screen does not match the file"
                    quiet_files += 1
                    continue
                if not rule.may_fire(source, precision):
                    assert not lines, f"{rule.code} fires in {path} but its may_fire says it cannot"
                    continue
                plan = screening.plan(source, [rule], str(path))
            if plan is None:
                continue
            if plan.text is None:
                assert not lines, f"{rule.code}: second stage keeps nothing of {path}, finding on {lines}"
                continue
            for line in lines:
                assert not any(first <= line <= last for first, last in plan.dropped), \
                    f"{rule.code}: finding on {path}:{line} in a definition the second stage drops"
            checked += len(lines)
    assert checked > 50 and quiet_files > 20


# -- the seed rules' screens: necessary for every spelling, tight against the common non-hazards ----------
HAZARDS = {
    "NAN301": ["y = torch.log(F.softmax(x, -1))", "import torch as np\ny = np.log(F.softmax(x, -1))",
               "from torch.nn import functional as math\ny = torch.log(math.softmax(x, -1))"],
    "NAN101": [
        "y = x / x.norm(dim=-1, keepdim=True)",
        "y = x / torch.linalg.vector_norm(x)",
        "y = x / torch.linalg.norm(x, dim=1)",
        "y = a / torch.dist(a, b)",
        "from torch import norm as N\ny = x / N(x)",
        "n = x.norm()\ny = x / n",
        "y = torch.div(x, x.norm())",
        "x /= x.norm()",
        "y = x / torch.sqrt((x ** 2).sum())",
        "y = x / (x ** 2).sum() ** 0.5",
        "y = x / (x**2).sum()**.5",
        "y = x / (x ** 2).sum() ** (1 / 2)",
        "half = 0.5\ny = x / (x ** 2).sum() ** half",
        "y = x / (x ** 2).sum() ** float('0.5')",
        "y = x / (x ** 2).sum() ** 0.50",
        "y = x / (x ** 2).sum() ** 5e-1",
        "y = x / (x ** 2).sum() ** --0.5",
        "y = x / (x ** 2).sum() ** 2 ** -1",
        "y = x / (\n    (x ** 2).sum()\n    ** 0.5\n)",
        "y = x / (x * x).sum().pow(0.5)",
        "y = x / torch.pow((x * x).sum(), 0.5)",
        "y = x / (x * x).sum().float_power(0.5)",
        "from torch import pow as P\ny = x / P((x * x).sum(), 0.5)",
        "import torch as np\ny = x / np.sqrt((x ** 2).sum())",
    ],
    "NAN102": [
        "y = (x - x.mean()) / x.std()",
        "y = (x - x.mean()) / torch.std(x, dim=0)",
        "s, m = torch.std_mean(x)\ny = (x - m) / s",
        "y = x / torch.std_mean(x)[0]",
        "from torch import std as S\ny = x / S(x)",
        "var = x.var(0)\ny = (x - x.mean(0)) / torch.sqrt(var)",
        "var = x.var(0)\ny = (x - x.mean(0)) / var ** 0.5",
        "y = (x - x.mean(0)) / x.var(0).pow(0.5)",
        "y = (x - x.mean()) / x.var().sqrt()",
        "y = (x - x.min()) / (x.max() - x.min())",
        "lo = x.amin(dim=(2, 3), keepdim=True)\nhi = x.amax(dim=(2, 3), keepdim=True)\ny = (x - lo) / (hi - lo)",
        "y = (x - torch.min(x)) / (torch.max(x) - torch.min(x))",
        "y = x / (x.max(1)[0] - x.min(1)[0])",
        "y = x / (x.max(dim=1).values - x.min(dim=1).values)",
        "from torch import min as lo, max as hi\ny = x / (hi(x) - lo(x))",
    ],
    "NAN201": [
        "loss = torch.sqrt(F.mse_loss(p, t))",
        "s = torch.sqrt(x.var(unbiased=False))",
        "s = ((x - mu) ** 2).mean() ** 0.5",
        "s = x.var().sqrt()",
        "d = torch.sqrt((p - t) ** 2)",
        "h = torch.hypot(a, b)",
        "s = (x ** 2).sum().pow(0.5)",
        "s = (x ** 2).sum() ** (1/2)",
        "s = (x ** 2).sum() ** 2 ** -1",
        "s = x.var().sqrt_()",
        "from torch import sqrt as root\ns = root(x.var())",
    ],
    "NAN202": [
        "v = h.pow(2).mean(-1, keepdim=True)\nh = h * torch.rsqrt(v)",
        "v = h.pow(2).mean(-1)\nh = h * v ** -0.5",
        "v = h.pow(2).mean(-1)\nh = h * v ** (-0.5)",
        "v = h.pow(2).mean(-1)\nh = h * v.pow(-0.5)",
        "p = 0.5\nv = h.pow(2).mean(-1)\nh = h * v ** -p",
        "v = h.pow(2).mean(-1)\nh = h * v ** -.5",
        "v = h.pow(2).mean(-1)\nh = h * v ** -2 ** -1",
        "v = h.pow(2).mean(-1)\nh = h * torch.pow(v, -0.5)",
        "v = h.var(-1)\nh = h * v.rsqrt()",
    ],
    "NAN305": [
        "y = F.ctc_loss(x, t, a, b)",
        "c = torch.nn.CTCLoss(blank=0)",
        "y = torch.nn.functional.ctc_loss(x, t, a, b, zero_infinity=False)",
        "from torch.nn.functional import ctc_loss as ctc\ny = ctc(x, t, a, b)",
    ],
    "NAN501": [
        "x = x.half()\ny = x / (x.norm() + 1e-8)",
        "x = x.half()\ny = x / (x.norm() + 1E-08)",
        "x = x.half()\ny = x / (x.norm() + 1.e-6)",
        "x = x.half()\ny = x / (x.norm() + 0.000001)",
        "x = x.half()\ny = x * torch.rsqrt(x.pow(2).mean(-1) + 1e-5)",
        "x = x.half()\ny = F.normalize(x, dim=-1)",
        "x = x.half()\ny = F.cosine_similarity(x, a)",
        "x = x.half()\ny = torch.nn.CosineSimilarity()(x, a)",
        "model = model.half()\nopt = torch.optim.Adam(model.parameters())",
        "model = model.half()\nopt = torch.optim.AdamW(model.parameters())",
        "model = model.half()\nopt = torch.optim.NAdam(model.parameters())",
        "model = model.half()\nopt = torch.optim.Adamax(model.parameters())",
        "model = model.half()\nopt = torch.optim.Adagrad(model.parameters())",
        "model = model.half()\nopt = torch.optim.RMSprop(model.parameters())",
    ],
    "NAN601": [
        "for b in data:\n    loss = model(b).mean()\n    loss.backward()\n    optimizer.step()",
        "for b in data:\n    accelerator.backward(model(b).mean())\n    opt.step()",
    ],
    "NAN602": [
        "scaler.scale(loss).backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "scaler.step(optimizer)",
        "scaler.scale (loss).backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "scaler.step(optimizer)",
    ],
}
NOT_HAZARDS = {  # what the old screens let through in almost every model file
    "NAN101": ["x = self.norm", "self.norm = nn.LayerNorm(d)", "scale = 1 / math.sqrt(d)", "r = np.sqrt(2)",
               "y = f(**kwargs)", "y = f(a, **kw)", "y = f(\n    a,\n    **kwargs,\n)", "z = x ** 2",
               "z = x.pow(2)", "s = d ** -0.5", "k = 2 ** len(x)", "inv = 1.0 / (base ** (torch.arange(0, d, 2) / d))",
               "import torch.distributed as dist\ndist.barrier()", "sqrt_n = 3", "d = {**a, **b}",
               "def f(*args, **kwargs): pass"],
    "NAN102": ["std = 0.02", "nn.init.normal_(w, std=self.config.init_std)", "variance = x.pow(2).mean(-1)",
               "scale = 1 / math.sqrt(d)"],
    "NAN201": ["scale = 1 / math.sqrt(d)", "s = d ** -0.5", "z = x ** 2", "hypothesis = 1", "k = 2 ** -len(x)"],
    "NAN202": ["s = d ** 0.5", "z = x ** -1", "z = x.pow(2)", "y = f(**kw)", "k = 2 ** -len(x)",
               "k = 2 ** -(torch.arange(4) / 4)"],
    "NAN301": ["head_bias = -math.log(num_classes)", "t = np.log(x)", "b = numpy.log10(p)"],
    "NAN302": ["head_bias = -math.log(num_classes)", "t = np.log(x)", "b = numpy.log10(p)", "w = math.log2(8)"],
    "NAN303": ["lr = base * math.exp(-k * t)", "w = np.exp(x)"],
    "NAN404": ["increasing = True", "anti_aliasing = 1", "a = math.acos(c)", "b = np.arcsin(s)", "acosh(x)"],
    "NAN305": ["ctc_loss_reduction = 'mean'", "y = self.ctc_loss_fn(x)", "z = MyCTCLossWrapper()"],
    "NAN501": ["tokens = add(t, normalized=False)", "m = _normalize_chat_messages(c)", "path = 'CWE-22'",
               "n = size-5", "opt = AnyPrecisionAdamW(p)", "lr_scheduler_type = 'cosine'"],
    "NAN601": ["def backward(ctx, grad):\n    return grad"],
    "NAN602": ["scale = 2.0", "x = self.scale * y"],
}


def _program(body: str) -> str:
    return "import torch\nimport torch.nn.functional as F\n\n\ndef f(x, a, b, p, t, h, mu, model, data, optimizer, opt, " \
           "accelerator, scaler, loss):\n" + textwrap.indent(body, "    ") + "\n    return x\n"


@pytest.mark.parametrize("code,snippet", [(c, s) for c, ss in HAZARDS.items() for s in ss])
def test_seed_screens_match_every_spelling(code: str, snippet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = BY_CODE[code]
    source = _program(snippet)
    screen = rule.screen
    monkeypatch.setattr(rule, "screen", EVERYTHING)
    fired = [f for f in lint(source, [rule], second_stage=False) if f[0] == code]
    assert fired, f"{code} does not flag this spelling at all (the test case is wrong):\n{source}"
    assert screen.search(source), f"{code}'s screen misses a finding:\n{source}"


@pytest.mark.parametrize("code,snippet", [(c, s) for c, ss in NOT_HAZARDS.items() for s in ss])
def test_seed_screens_reject_common_non_hazards(code: str, snippet: str) -> None:
    assert not BY_CODE[code].screen.search(snippet), f"{code}'s screen matches {snippet!r}"


# -- the second stage on constructed files: evidence across definitions ---------------------------------
PAD = "".join(f"\n\ndef unrelated_{i}(x):\n    '''Docstring: x / x.norm() ** 0.5, torch.rsqrt(v).'''\n"
              f"    return x + {i}\n" for i in range(12))


def check_equivalent(source: str, rules=ALL_RULES, expect_sliced: bool = True) -> list[tuple]:
    plain = lint(source, rules, second_stage=False)
    assert lint(source, rules, second_stage=True) == plain
    plan = screening.plan(source, screened_rules(rules, source))
    assert plan is not None
    assert plan.sliced == expect_sliced, plan
    return plain


def assert_reported_when_sliced(code: str, head: str, body: str) -> None:
    """``body`` after ``PAD`` gives one finding of rule ``code``, the same with the second stage on and off."""
    assert [f[0] for f in check_equivalent(head + PAD + "\n\n" + body, (BY_CODE[code],))] == [code]


def assert_nothing_kept(code: str, head: str, body: str) -> None:
    """``body`` after ``PAD`` gives no finding of rule ``code``, and the second stage parses nothing for it."""
    source = head + PAD + "\n\n" + body
    rule = BY_CODE[code]
    assert lint(source, [rule], second_stage=False) == []
    plan = screening.plan(source, screened_rules([rule], source))
    assert plan is not None and plan.text is None


def assert_nothing_kept_by(source: str, codes: tuple[str, ...] = ("NAN101", "NAN102", "NAN201", "NAN202")) -> None:
    """No finding of each rule of ``codes`` (by default those that read square roots) in ``source``, and the second
    stage parses nothing for it."""
    for code in codes:
        assert lint(source, [BY_CODE[code]], second_stage=False) == []
        assert screening.plan(source, [BY_CODE[code]]).text is None, code


def test_module_level_evidence_reaches_the_definitions_that_read_it() -> None:
    source = "import torch\nW = torch.randn(3)\nN = torch.norm(W)\n" + PAD + \
        "\n\ndef scaled(x):\n    return x / N\n"
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101"]
    plan = screening.plan(source, screened_rules(ALL_RULES, source))
    assert "return x / N" in plan.text and "return x + 0" not in plan.text  # only the reader is kept


def test_module_level_evidence_follows_module_level_names() -> None:
    """``N`` holds the norm; ``M`` reads ``N`` at module level; the definition reads only ``M``."""
    source = "import torch\nW = torch.randn(3)\nN = torch.norm(W)\nif True:\n    M = N * 2\n" + PAD + \
        "\n\ndef scaled(x):\n    return x / M\n"
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101"]


@pytest.mark.parametrize("text", ["", "a + b", "x ** 2", "a + x ** 2", "norm(x) + y ** 2", "y = 1 + norm(x)",
                                  "+ norm(", "var(x)\nnorm(a) + 1\nsqrt(b)", "v * v + w", "x\n+\nmse"])
def test_a_file_condition_screen_matches_as_its_anchored_lookahead_would(text: str) -> None:
    """``WithFileCondition(p, c)`` finds what the regex ``p|\\A(?=...)`` finds: the same starts, the same
    leftmost match (NAN101: a ``+`` and a square anywhere make the start of the file a match)."""
    from nanlint.rules._screens import WithFileCondition

    pattern = re.compile(r"norm\s*[(] | sqrt", re.VERBOSE)
    joined = re.compile(r"norm\s*[(] | sqrt | \A(?=[\s\S]*[+])(?=[\s\S]*?(?:[*][*]\s*2 | var | mse | (\w+)\s*[*]\s*\1))",
                        re.VERBOSE)
    square = re.compile(r"[*][*]\s*2 | var | mse | (\w+)\s*[*]\s*\1", re.VERBOSE)
    screen = WithFileCondition(pattern, lambda t: "+" in t and square.search(t) is not None)
    assert [m.start() for m in screen.finditer(text)] == [m.start() for m in joined.finditer(text)]
    expected = joined.search(text)
    found = screen.search(text)
    assert (found and (found.start(), found.end())) == (expected and (expected.start(), expected.end()))


def test_module_level_assignments_no_kept_code_reads_are_stubbed() -> None:
    """A multi-line module-level assignment is parsed only when something kept reads a name it binds (through
    other such assignments too), a screen matches it, or it reads what module-level evidence binds; an
    assignment to an attribute or an item changes an object and always stays."""
    source = "import torch\nW = torch.randn(3)\nN = torch.norm(W)\n" + textwrap.dedent("""\
        CONFIGS = dict(
            small=dict(depth=2),
            large=dict(depth=24),
        )
        BASE = (
            1e-6
        )
        EPS = (
            BASE * 10
        )
        TINY: float = (
            EPS / 2
        )
        torch.backends.flags = dict(
            allow=True,
        )
        SCALED = (
            W / N
        )
        HALF = (
            N * 0.5
        )
        NOTES = [
            "x / x.norm()",
        ]
        """) + PAD + "\n\ndef scaled(x):\n    return x / (x.norm() + TINY)\n"
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101"]  # ``SCALED``: the module-level division by the norm
    plan = screening.plan(source, screened_rules(ALL_RULES, source))
    lines, sliced = source.split("\n"), plan.text.split("\n")
    assert len(lines) == len(sliced)
    stubbed = {lines[first - 1].split(" ")[0] for first, _ in plan.dropped if lines[first - 1][:1].isupper()}
    assert stubbed == {"CONFIGS"}, plan.dropped  # BASE, EPS, TINY: read; SCALED, HALF: read N; NOTES: matches
    assert sliced[3] == 'CONFIGS = """' and "torch.backends.flags = dict(" in sliced


def test_unread_configurations_and_the_module_level_code_that_extends_them_are_stubbed() -> None:
    """timm's ``vision_transformer.py``: a dict of configurations, a one-line list and a loop that read it and
    add entries, a one-line rebinding; kept code reads none of them, so the dict and the loop are stubbed."""
    configs = textwrap.dedent("""\
        default_cfgs = {
            'a': dict(notes=('quickgelu',)),
            'b': dict(notes=()),
        }
        _quick = [n for n, c in default_cfgs.items() if c['notes']]
        for n in _quick:
            c = dict(default_cfgs[n])
            default_cfgs[n + '_q'] = c
        default_cfgs = register(default_cfgs)
        """)
    source = "import torch\n" + configs + PAD + "\n\ndef scaled(x):\n    return x / x.norm()\n"
    assert [f[0] for f in check_equivalent(source)] == ["NAN101"]
    text = screening.plan(source, [BY_CODE["NAN101"]]).text
    assert "'a': dict" not in text and "default_cfgs[n + '_q'] = c" not in text
    reading = source.replace("return x / x.norm()", "return x / x.norm() * len(default_cfgs)")
    check_equivalent(reading)
    text = screening.plan(reading, [BY_CODE["NAN101"]]).text
    assert "'a': dict" in text and "default_cfgs[n + '_q'] = c" in text  # read by kept code: parsed


def test_setters_no_kept_code_reads_are_stubbed() -> None:
    """A method of a kept class that no screen made hot stays only when kept code mentions an attribute it sets
    (through other setters too): what one method tells another is an attribute binding, looked up by name."""
    source = "import torch\n" + PAD + textwrap.dedent("""\


        class Scaler(torch.nn.Module):
            def attach(self, v):
                self.base = v.norm(dim=-1, keepdim=True)

            def prepare(self):
                self.scale = self.base

            def set_logging(self, on):
                self.verbose = on
                self.every = 10

            def forward(self, x):
                return x / self.scale
        """)
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101"]  # ``x / self.scale``: the norm set in ``attach``
    plan = screening.plan(source, screened_rules(ALL_RULES, source))
    lines = source.split("\n")
    stubbed = {lines[first - 1].strip() for first, _ in plan.dropped if "class" not in lines[first - 1]}
    assert "def set_logging(self, on):" in stubbed  # sets ``verbose`` and ``every``: nothing kept reads them
    assert not stubbed & {"def attach(self, v):", "def prepare(self):"}  # ``scale`` read, ``base`` read by it
    assert "self.base = v.norm(dim=-1, keepdim=True)" in plan.text


def test_star_import_or_evidence_in_a_comment() -> None:
    reader = "\n\ndef rms(p, q):\n    return np.sqrt(((p - q) ** 2).mean())\n"  # no match of its own
    named = "import math\nimport torch as np\n" + PAD + reader
    star = "import math\nfrom torch import *; import torch as np\n" + PAD + reader
    for source in (named, star):  # torch under numpy's name: the plain path (``_torch_as_foreign``)
        assert screening.plan(source, [BY_CODE["NAN201"]]) is None
        found = lint(source, [BY_CODE["NAN201"]])
        assert [f[0] for f in found] == ["NAN201"] and found == lint(source, [BY_CODE["NAN201"]], second_stage=False)
    comment = "import torch\n# x / x.norm() is dangerous\n" + PAD + "\n\ndef scaled(x):\n    return x / x.norm()\n"
    found = check_equivalent(comment)
    assert [f[0] for f in found] == ["NAN101"]
    assert "return x + 0" not in screening.plan(comment, screened_rules(ALL_RULES, comment)).text


def test_attribute_set_in_one_method_read_in_another() -> None:
    source = "import torch\n" + PAD + textwrap.dedent("""

        class Scaler(torch.nn.Module):
            def update(self, x):
                self.n = x.norm()

            def other(self, x):
                return x + 1

            def forward(self, x):
                return x / self.n
        """)
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101"]


def test_methods_are_sliced_and_the_setters_they_read_kept() -> None:
    """Only the hot method and the methods that set a ``self.x`` it reads survive in a hot class; a stubbed
    method keeps its indentation, its imports, and its decorators' lines."""
    source = "import torch\n" + PAD + textwrap.dedent("""

        class Block(torch.nn.Module):
            scale = 2

            def __init__(self, eps):
                super().__init__()
                self.eps = eps

            @property
            def unrelated(self):
                from torch.nn import functional as F
                return F.relu(torch.ones(3)) + 1

            def forward(self, x):
                return x / x.norm() * self.eps
        """)
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101"]
    plan = screening.plan(source, screened_rules(ALL_RULES, source))
    assert "self.eps = eps" in plan.text and "F.relu" not in plan.text
    assert "    def unrelated(): from torch.nn import functional as F; " in plan.text


def test_evidence_in_an_attribute_setter_reaches_every_method_unless_the_rule_says_no() -> None:
    source = "import torch\n" + PAD + textwrap.dedent("""

        class Norm(torch.nn.Module):
            def __init__(self, d):
                self.ln = torch.nn.LayerNorm(d, eps=0)
                self.n = torch.ones(d).norm()

            def helper(self, x):
                return x * 2

            def forward(self, x):
                return self.ln(x) / self.n
        """)
    found = check_equivalent(source)
    assert sorted(f[0] for f in found) == ["NAN101", "NAN502"]
    only_502 = screening.plan(source, [BY_CODE["NAN502"]])
    assert "x * 2" not in only_502.text and "self.ln(x) / self.n" not in only_502.text  # attribute_flow False
    only_101 = screening.plan(source, [BY_CODE["NAN101"]])
    assert "self.ln(x) / self.n" in only_101.text  # the norm set in __init__ reaches forward


def test_a_definition_without_a_division_cannot_hold_a_divide_by_finding() -> None:
    """The divide-by rules' ``site``: evidence (``.norm()``) in a function with no division keeps nothing."""
    source = "import torch\n" + PAD + "\n\ndef f(x):\n    return x.norm() * 2\n\n\ndef g(x, n):\n    return x / n\n"
    plan = screening.plan(source, [BY_CODE["NAN101"]])
    assert plan.text is None
    renamed = "from torch import div as d\n" + source.replace("x / n", "d(x, x.norm())")
    assert [f[0] for f in check_equivalent(renamed, [BY_CODE["NAN101"]])] == ["NAN101"]


# The divide-by rules' flow condition: the evidence must reach a divisor of the region, by name.
REACHING = {
    "direct": ("NAN103", "def f(x, mask):\n    n = mask.sum()\n    return (x * mask).sum() / n\n"),
    "in-place": ("NAN103", "def f(x, row, N):\n    deg = torch.zeros(N)\n"
                           "    deg.index_add_(0, row, torch.ones(row.shape[0]))\n    return x / deg[:, None]\n"),
    "walrus": ("NAN103", "def f(x, mask):\n    if (n := mask.sum()) is not None:\n        pass\n"
                         "    return x.sum() / n\n"),
    "augmented": ("NAN103", "def f(x, mask):\n    x = (x * mask).sum()\n    x /= mask.sum()\n    return x\n"),
    "power": ("NAN103", "def f(x, row, N):\n    deg = torch.zeros(N).scatter_add_(0, row, torch.ones(row.shape[0]))\n"
                        "    d = deg.pow(-0.5)\n    return x * d[:, None]\n"),
    "attribute": ("NAN101", "class A(torch.nn.Module):\n    def __init__(self, w):\n        super().__init__()\n"
                            "        self.w = w\n\n    def setup(self, x):\n        n = x.norm()\n        self.n = n\n\n"
                            "    def forward(self, x):\n        return x / self.n\n"),
    "unpacked": ("NAN102", "def f(x):\n    s, m = torch.std_mean(x)\n    return (x - m) / s\n"),
    # NAN101's file-level condition: a sum whose every term vanishes with its input (no norm, no root)
    "vanishing sum": ("NAN101", "def f(p, a):\n    g = p.grad\n    g2 = (g * g).sum()\n"
                                "    return g2 / (2 * g2 + (a * g ** 3).sum())\n"),
    "vanishing sum by name": ("NAN101", "def f(p, a):\n    g = p.grad\n    g2 = (g * g).sum()\n"
                                        "    d = 2 * g2 + (a * g ** 3).sum()\n    return g2 / d\n"),
}


@pytest.mark.parametrize("case", sorted(REACHING))
def test_evidence_reaches_the_divisor_through_the_definition(case: str) -> None:
    code, body = REACHING[case]
    source = "import torch\n" + PAD + "\n\n" + body
    assert [f[0] for f in check_equivalent(source)] == [code]
    plan = screening.plan(source, [BY_CODE[code]])
    assert plan is not None and plan.text is not None and body.splitlines()[-1] in plan.text


def test_evidence_that_reaches_no_divisor_keeps_nothing() -> None:
    """A sum and a length in the function, a division in it too, but the divisor is computed from neither."""
    body = ("def adapt(w, in_chans, base):\n    w = w.sum(dim=1, keepdim=True)\n    w *= base / float(in_chans)\n"
            "    n = len(w)\n    return w * n\n")
    source = "import torch\n" + PAD + "\n\n" + body
    assert screening.plan(source, [BY_CODE["NAN103"]]).text is None
    # the same function dividing by the sum is kept
    divided = source.replace("base / float(in_chans)", "base / w")
    assert screening.plan(divided, [BY_CODE["NAN103"]]).text is not None


def test_a_call_that_is_not_in_place_sets_nothing() -> None:
    """``stats.update(n, d)`` leaves ``d`` what it was assigned (``Bindings.note_in_place`` records only
    ``d.add_(...)``-style calls): the count reaches no divisor. ``d.add_(n)`` makes ``d`` the count's."""
    body = "def f(x, mask, d, stats):\n    n = mask.sum()\n    stats.update(n, d)\n    return x / d\n"
    assert_nothing_kept_by("import torch\n" + PAD + "\n\n" + body, ("NAN103",))
    in_place = body.replace("stats.update(n, d)", "d.add_(n)")
    plan = screening.plan("import torch\n" + PAD + "\n\n" + in_place, [BY_CODE["NAN103"]])
    assert plan.text is not None and "return x / d" in plan.text



@pytest.mark.parametrize("divisor", ["n.clamp(min=1)", "torch.clamp(n, 1)", "n.clamp_min(1).float()[:, None]",
                                     "n.clip(0.5)", "n.clamp_min(eps)", "(n + 1)", "(eps + n).float()",
                                     "n.add_(eps)", "torch.add(n, 1)"])
def test_a_divisor_kept_off_zero_by_a_positive_number_keeps_nothing(divisor: str) -> None:
    """A count clamped away from 0 (``Bindings.clamp_guard``) or with a positive number added
    (``Bindings.is_positive``; ``eps`` a parameter's default): nothing for the divide-by rules to report,
    nothing to parse. A clamp with no positive floor, or a term that may be 0, guards nothing."""
    body = (f"def pool(x, mask, eps=1e-6):\n    n = mask.sum(-1, keepdim=True)\n"
            f"    return (x * mask).sum(-1) / {divisor}\n")
    head = "import torch\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + body, ("NAN101", "NAN102", "NAN103"))
    for unguarded in ("n.clamp(max=10)", "torch.clamp(n, 0)", "n.clamp_min(-1)", "(n + n)"):
        assert_reported_when_sliced("NAN103", head, body.replace(divisor, unguarded))
    norm = "def unit(x):\n    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + norm, ("NAN101", "NAN102", "NAN103"))


@pytest.mark.parametrize("value", ["mask.sum(-1, keepdim=True).clamp(min=1)", "mask.sum(-1) + 1e-6",
                                   "x.norm(dim=-1, keepdim=True).clamp_min(eps)", "torch.clamp(mask.sum(-1), 1).float()"])
def test_a_name_assigned_a_guarded_value_carries_no_evidence(value: str) -> None:
    """``valid_counts = patch_valid.sum(dim=1, keepdim=True).clamp(min=1)`` then ``masked_sums / valid_counts``
    (timm's NaFlex pooling): the value analysis follows the name to its assignment, where the guard ends
    ``count`` and ``zero_source``; the divide-by rules' taint does the same (``_Flows.divisor_binds``), in a
    method as in an attribute another method sets. The name assigned the bare count is reported."""
    head = "import torch\n"
    body = f"def pool(x, mask, eps=1e-6):\n    total = (x * mask).sum(-1)\n    n = {value}\n    return total / n\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + body, ("NAN101", "NAN102", "NAN103"))
    method = (f"class Pool(torch.nn.Module):\n    def setup(self, x, mask, eps=1e-6):\n        self.n = {value}\n\n"
              "    def forward(self, x, mask):\n        total = (x * mask).sum(-1)\n        return total / self.n\n")
    assert_nothing_kept_by(head + PAD + "\n\n" + method, ("NAN101", "NAN102", "NAN103"))
    if value.startswith("mask.sum"):
        assert_reported_when_sliced("NAN103", head, body.replace(value, "mask.sum(-1)"))


def test_a_div_call_divides_by_its_divisor_argument() -> None:
    """``torch.div(x, d)`` and ``x.div_(d)`` divide by ``d`` (``patterns.division``), which may be guarded; what
    the numerator holds reaches no divisor."""
    head = "import torch\n"
    body = "def f(x, mask):\n    n = mask.sum(-1)\n    return torch.div((x * mask).sum(-1), n.clamp(min=1))\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + body, ("NAN101", "NAN102", "NAN103"))
    assert_reported_when_sliced("NAN103", head, body.replace("n.clamp(min=1)", "n"))
    numerator = "def g(x, mask, d):\n    n = mask.sum(-1)\n    return n.div_(d)\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + numerator, ("NAN101", "NAN102", "NAN103"))
    foreach = "def s(xs, mask):\n    n = mask.sum(-1)\n    return torch._foreach_div(xs, n)\n"  # no DIVIDE_OPS key
    assert_nothing_kept_by(head + PAD + "\n\n" + foreach, ("NAN101", "NAN102", "NAN103"))


def test_a_hand_written_softmax_needs_its_exp_to_reach_a_division_or_a_log() -> None:
    """NAN303 reports a division or a ``log`` the exp reaches (``site_reads``): an exp scaling logits, or one
    beside an unrelated division, keeps nothing; a softmax or a logsumexp written by hand is kept and reported."""
    head = "import torch\n"
    scaled = "def f(x, scale):\n    return x * scale.exp()\n"
    beside = "def g(x, y, n):\n    s = x.exp()\n    return s * (y / n)\n"
    for body in (scaled, beside):
        assert_nothing_kept_by(head + PAD + "\n\n" + body, ("NAN303",))
    softmax = "def h(x):\n    e = x.exp()\n    return e / e.sum(-1, keepdim=True)\n"
    assert_reported_when_sliced("NAN303", head, softmax)
    assert_reported_when_sliced("NAN303", head, "def k(x):\n    e = torch.exp(x)\n    return torch.log(e.sum(-1))\n")


def test_a_power_is_a_divisor_only_of_a_negative_power_rule() -> None:
    """``n ** 2`` divides by nothing; ``n ** -0.5`` only for NAN103 (``reciprocals``: ``deg ** -0.5``), never
    for NAN101 or NAN102, whose findings are divisions (``patterns.division``)."""
    head = "import torch\n"
    count = "def f(x, mask):\n    n = mask.sum(-1)\n    return (x / 4) * n ** 2\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + count, ("NAN103",))
    assert_reported_when_sliced("NAN103", head, count.replace("n ** 2", "n ** -0.5"))
    norm = "def g(x):\n    n = x.norm(dim=-1)\n    return (x / 4) * n ** -1\n"
    assert_nothing_kept_by(head + PAD + "\n\n" + norm, ("NAN101", "NAN102"))

# The square-root rules' operand condition (``root_operand``): a square, a variance, a norm or an MSE must reach
# a root's operand. Each case's root reads one, and is reported with the second stage on and off.
ROOTS = {
    "direct": ("NAN201", "def f(p, t):\n    return torch.sqrt(F.mse_loss(p, t))\n"),
    "name": ("NAN202", "def f(h):\n    v = h.pow(2).mean(-1, keepdim=True)\n    return h * v.rsqrt()\n"),
    "parameter named like a variance": ("NAN202", "def f(x, running_var):\n    return x * running_var ** -0.5\n"),
    "self product": ("NAN201", "def f(p, t):\n    d = (p - t) * (p - t)\n    return torch.sqrt(d.sum())\n"),
    "attribute": ("NAN201", "class A(torch.nn.Module):\n    def setup(self, x):\n        self.v = x.var()\n\n"
                            "    def forward(self, x):\n        return x * torch.sqrt(self.v)\n"),
    "criterion set in __init__": ("NAN201", "class A(torch.nn.Module):\n    def __init__(self):\n"
                                            "        super().__init__()\n        self.crit = torch.nn.MSELoss()\n\n"
                                            "    def forward(self, p, t):\n        return self.crit(p, t).sqrt()\n"),
    "module-level criterion": ("NAN201", "CRIT = torch.nn.MSELoss()\n\n\ndef rmse(p, t):\n"
                                         "    return torch.sqrt(CRIT(p, t))\n"),
    "one-pass variance set in another method": (
        "NAN201", "class A(torch.nn.Module):\n    def setup(self, x):\n        self.s = (x * x).mean() - x.mean() ** 2\n\n"
                  "    def forward(self, x):\n        return x / torch.sqrt(self.s + 1e-5)\n"),
    "eps outside": ("NAN201", "def f(x, y):\n    d = x - y\n    return torch.sqrt(d) + 1e-8\n"),
    "hypot": ("NAN201", "def f(a, b):\n    return torch.hypot(a, b)\n"),
}


@pytest.mark.parametrize("case", sorted(ROOTS))
def test_square_evidence_reaches_the_root_through_the_definition(case: str) -> None:
    code, body = ROOTS[case]
    source = "import torch\nimport torch.nn.functional as F\n" + PAD + "\n\n" + body
    assert [f[0] for f in check_equivalent(source, (BY_CODE[code],))] == [code]
    plan = screening.plan(source, [BY_CODE[code]])
    assert plan is not None and plan.text is not None and body.splitlines()[-1] in plan.text


@pytest.mark.parametrize("body", [
    "class Attention(torch.nn.Module):\n    def __init__(self, dim, num_heads):\n        super().__init__()\n"
    "        head_dim = dim // num_heads\n        self.scale = head_dim ** -0.5\n",
    "def widths(out_chs, chs_decay, num_rep):\n    return [round(out_chs * chs_decay ** i) for i in range(num_rep)]\n",
    "def scale(dim, warmup):\n    return torch.sqrt(torch.tensor(warmup + 1.0)) * (dim * 4) ** 0.5\n",
])
def test_a_root_no_square_reaches_keeps_nothing(body: str) -> None:
    """A root whose operand is a head dimension, a decay or a step count: no square, variance or norm reaches it."""
    source = "import math\nimport torch\n" + PAD + "\n\n" + body
    assert_nothing_kept_by(source, ("NAN201", "NAN202"))
    renamed = "from torch import rsqrt as rs\n" + source  # a renamed root: nothing is dropped for it
    assert "head_dim" not in body or screening.plan(renamed, [BY_CODE["NAN202"]]).text is not None



@pytest.mark.parametrize("body", [
    "def f(x):\n    v = ((x - x.mean()) ** 2).mean()\n    return x / math.sqrt(v) + np.sqrt(v)\n",
    "class Block(torch.nn.Module):\n    def fix_init_weight(self):\n        def rescale(param, layer_id):\n"
    "            param.div_(math.sqrt(2.0 * layer_id))\n        for i, layer in enumerate(self.blocks):\n"
    "            rescale(layer.weight.data, i + 1)\n",
])
def test_a_root_of_another_librarys_module_keeps_nothing(body: str) -> None:
    """``math.sqrt`` and ``np.sqrt`` are no torch roots (``names.match_call``): of a number, which no gradient
    crosses. The same file importing torch under numpy's name takes the plain path, and ``np.sqrt`` is a root."""
    source = "import math\nimport numpy as np\nimport torch\n" + PAD + "\n\n" + body
    assert_nothing_kept_by(source)
    aliased = source.replace("import numpy as np", "import torch as np")
    assert screening.plan(aliased, [BY_CODE["NAN201"]]) is None
    found = lint(aliased, [BY_CODE["NAN201"]])
    assert found == lint(aliased, [BY_CODE["NAN201"]], second_stage=False)
    assert [f[0] for f in found] == (["NAN201"] if "v = " in body else [])  # ``np.sqrt(v)``: torch's, of a variance


def test_an_in_place_call_makes_no_square_unless_it_adds_a_product() -> None:
    """An optimizer's ``param.mul_(1 - lr ** 2 * wd)`` reads a square but leaves ``param`` what it was (the value
    analysis follows a name to its assignment; of the in-place calls after it only ``addmm_`` adds a square):
    the root of ``param`` keeps nothing. ``d.addmm_(x, y.t(), alpha=-2)`` makes an expanded distance of ``d``."""
    body = ("def step(param, grad, lr, wd):\n    scale = lr ** 2 / wd\n    param.mul_(1.0 - scale)\n"
            "    return grad / param.sqrt()\n")
    source = "import torch\n" + PAD + "\n\n" + body
    assert_nothing_kept_by(source)
    expanded = ("def dist(x):\n    sq = (x ** 2).sum(1)\n    d = sq[:, None] + sq[None, :]\n"
                "    d.addmm_(x, x.t(), alpha=-2)\n    return torch.sqrt(d)\n")
    assert_reported_when_sliced("NAN201", "import torch\n", expanded)



@pytest.mark.parametrize("source,expected", [
    ("p = 0.5\nx ** p\n", {0.5}),
    ("def f(x, p=2):\n    return x ** p\n", {2.0}),
    ("q = -0.5\np = q\nx ** p\n", {-0.5}),
    ("class A:\n    def __init__(self, k=1.0):\n        self.k = k\n\n"
     "    def f(self, t):\n        return t ** self.k\n", {1.0}),
    ("p = 0.5\nx ** -p\n", {-0.5}),
    ("for p in (0.5, 2):\n    x ** p\n", set()),  # a loop variable: no literal
    ("p = compute()\nx ** p\n", set()),
    ("p = True\nx ** p\n", set()),
    ("p = 1 / 2\nx ** p\n", None),  # folded arithmetic: any number
    ("p = cfg['p']\nx ** p\n", None),  # a config's entry
    ("p = float('0.5')\nx ** p\n", None),
    ("p = cfg.p\nx ** p\n", None),  # a config's field
])
def test_the_literals_an_exponent_may_hold(source: str, expected) -> None:
    """``Assignments.literals``: what ``Bindings.literal`` may fold an exponent to, None for any number."""
    import ast

    from nanlint.rules._screens import Assignments

    tree = ast.parse(source)
    power = next(node for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow))
    found = Assignments(tree, source).literals(power.right)
    assert (found if found is None else set(found)) == expected


def test_a_power_whose_exponent_is_never_a_half_is_no_root() -> None:
    """A scheduler's ``t ** k`` with ``k = self.k_decay`` of a default 1.0: no root for the value analysis
    (``root``: ``literal(k) == 0.5``), nothing kept. The default 0.5 makes it a root of a variance."""
    body = ("class Decay:\n    def __init__(self, k_decay=1.0):\n        self.k_decay = k_decay\n\n"
            "    def lr(self, x, t):\n        k = self.k_decay\n        v = ((x - x.mean()) ** 2).mean()\n"
            "        return v ** k / t\n")
    assert_nothing_kept_by("import torch\n" + PAD + "\n\n" + body, ("NAN201", "NAN202"))
    assert_reported_when_sliced("NAN201", "import torch\n", body.replace("k_decay=1.0", "k_decay=0.5"))

# NAN101 and NAN102's ``root_evidence``: a root is a norm or a standard deviation only when its operand may be
# a square; ``a + b`` is one only when both terms may be, or when it may hold a one-pass variance.
ROOT_EVIDENCE = {
    "hand-written norm": ("NAN101", "def f(x):\n    n = torch.sqrt((x ** 2).sum(-1, keepdim=True))\n"
                                    "    return x / n\n"),
    "root of a variance": ("NAN102", "def f(x):\n    mu = x.mean(0)\n    var = ((x - mu) ** 2).mean(0)\n"
                                     "    return (x - mu) / torch.sqrt(var)\n"),
    "variance set in __init__": ("NAN102", "class N(torch.nn.Module):\n    def __init__(self, x):\n"
                                           "        super().__init__()\n        self.s = x.var(0).sqrt()\n\n"
                                           "    def forward(self, x):\n        return x / self.s\n"),
}


@pytest.mark.parametrize("case", sorted(ROOT_EVIDENCE))
def test_a_root_of_a_square_is_evidence(case: str) -> None:
    code, body = ROOT_EVIDENCE[case]
    source = "import torch\n" + PAD + "\n\n" + body
    assert code in [f[0] for f in check_equivalent(source, (BY_CODE[code],))]
    assert body.splitlines()[-1] in screening.plan(source, [BY_CODE[code]]).text


def test_a_root_of_a_guarded_variance_keeps_nothing() -> None:
    """Folding a batch norm into a convolution: ``(running_var + eps).sqrt()`` has a positive term."""
    body = ("def fuse(gamma, beta, mean, running_var, eps):\n    std = (running_var + eps).sqrt()\n"
            "    t = gamma / std\n    return t, beta - mean * gamma / std\n")
    source = "import torch\n" + PAD + "\n\n" + body
    assert_nothing_kept_by(source)
    method = ("class Block(torch.nn.Module):\n    def fuse(self, branch):\n        self.id_tensor = branch.weight\n"
              "        running_var = branch.running_var\n        eps = branch.eps\n        gamma = branch.weight\n"
              "        std = (running_var + eps).sqrt()\n        return gamma / std\n")  # a setter, as in timm
    source = "import torch\n" + PAD + "\n\n" + method
    assert_nothing_kept_by(source)
    one_pass = body.replace("std = (running_var + eps).sqrt()",
                            "running_var = (x * x).mean() - x.mean() ** 2\n    std = (running_var + eps).sqrt()")
    one_pass = one_pass.replace("def fuse(gamma, beta, mean, running_var, eps)", "def fuse(gamma, beta, mean, x, eps)")
    source = "import torch\n" + PAD + "\n\n" + one_pass  # a one-pass variance plus an eps rounds below 0
    assert [f[0] for f in check_equivalent(source, (BY_CODE["NAN201"],))] == ["NAN201"]


@pytest.mark.parametrize("body", [
    "def stages(alphas):\n    expected_var = 1.0\n    betas = []\n    for alpha in alphas:\n"
    "        betas.append(1. / expected_var ** 0.5)\n        expected_var += alpha ** 2\n    return betas\n",
    "def f(x, xs):\n    total = 0.0\n    for t in xs:\n        total += t ** 2\n    return x / total ** 0.5\n",
], ids=["nf-net expected variance", "accumulated squares"])
def test_an_augmented_assignment_and_a_bound_variance_name_make_no_square(body: str) -> None:
    """NF-Net's expected variance: ``expected_var`` is bound in the function (``= 1.0``, ``+= alpha ** 2``), so
    ``zero_source`` follows its bindings and never takes a variance-like name's prior, and an augmented
    assignment ends the trail (``+=``; ``*=`` reads the binding before it). Nothing to report, nothing kept."""
    assert_nothing_kept_by("import torch\n" + PAD + "\n\n" + body)


@pytest.mark.parametrize("body", [
    # a parameter: its binding is the parameter's until the reassignment
    "def f(x, var):\n    y = x / var.sqrt()\n    var = var + 1.0\n    return y\n",
    # a nested function's parameter of the same name
    "def f(x):\n    var = 1.0\n    scale = lambda var: x / var.sqrt()\n    return scale(x.var()) * var\n",
    # ``*=`` reads the binding before it: a square
    "def f(x):\n    v = (x ** 2).mean()\n    v *= 2.0\n    return x / v.sqrt()\n",
])
def test_a_variance_name_read_where_the_prior_or_a_square_holds_is_evidence(body: str) -> None:
    source = "import torch\n" + PAD + "\n\n" + body
    assert "NAN201" in [f[0] for f in check_equivalent(source, (BY_CODE["NAN201"],))]
    assert "x / v" in body or "var.sqrt()" in screening.plan(source, [BY_CODE["NAN201"]]).text


def test_a_name_assigned_no_square_carries_none() -> None:
    """Adam's bias corrections: ``1 - beta2 ** step`` reads square evidence (``step`` may be 2) but is no square
    for ``zero_source`` (one minus a square is one only of a cosine), so the name assigned it is none either:
    a plain assignment makes its target a square exactly where its value may be one (``_Flows.square_value``).
    Nothing to report, nothing kept."""
    body = ("def adam(params, exp_avgs, exp_avg_sqs, state_steps, lr, beta1, beta2, eps):\n"
            "    for i, param in enumerate(params):\n        step = state_steps[i]\n"
            "        bias_correction1 = 1 - beta1 ** step\n        bias_correction2 = 1 - torch.pow(beta2, step)\n"
            "        step_size = lr / bias_correction1\n        bias_correction2_sqrt = bias_correction2 ** 0.5\n"
            "        denom = (exp_avg_sqs[i].sqrt() / bias_correction2_sqrt).add_(eps)\n"
            "        param.addcdiv_(exp_avgs[i], denom, value=-step_size)\n")
    assert_nothing_kept_by("import torch\n" + PAD + "\n\n" + body)


@pytest.mark.parametrize("body", [
    "def sine(a, b):\n    cos = F.cosine_similarity(a, b)\n    s = 1 - cos ** 2\n    return torch.sqrt(s)\n",
    "def sine(a, b, sim):\n    s = 1.0 - sim.pow(2)\n    return s.sqrt()\n",
    "def pairwise(a, b):\n    sq_a = (a ** 2).sum(1)\n    sq_b = (b ** 2).sum(1)\n"
    "    d = sq_a[:, None] - 2 * a @ b.t() + sq_b[None, :]\n    return d.sqrt()\n",
], ids=["one minus a squared cosine", "one minus a squared similarity", "expanded squared distance"])
def test_a_difference_that_is_a_square_reaches_the_root(body: str) -> None:
    """The differences ``zero_source`` calls a square: one minus a squared cosine (by provenance or name) and an
    expanded squared distance, assigned to a name the root reads."""
    assert_reported_when_sliced("NAN201", "import torch\nimport torch.nn.functional as F\n", body)


# NAN103's ``evidence_at``: ``len(x)`` / ``x.numel()`` count only a selection the code assigns, and a bare
# ``sum(...)`` is Python's unless the file imports one. Each of these counts is reported, sliced or not.
COUNTS = {
    "assigned selection": "def f(loss, mask):\n    sel = loss[mask]\n    return sel.sum() / len(sel)\n",
    "selection in place": "def f(loss, mask):\n    return loss[mask].sum() / loss[mask].numel()\n",
    "attribute set to a selection": "class A:\n    def setup(self, loss, mask):\n        self.sel = loss[mask]\n\n"
                                    "    def f(self):\n        return self.sel.sum() / len(self.sel)\n",
    "selection on several lines": "def f(loss, mask):\n    sel = (\n        loss[mask]\n    )\n"
                                  "    return sel.sum() / len(sel)\n",
    "imported sum": "def f(loss, mask):\n    return sum(loss * mask) / sum(mask)\n",
}


@pytest.mark.parametrize("case", sorted(COUNTS))
def test_a_count_of_a_selection_is_evidence(case: str) -> None:
    body = COUNTS[case]
    head = "from torch import (\n    sum,\n)\n" if case == "imported sum" else "import torch\n"
    source = head + PAD + "\n\n" + body
    assert [f[0] for f in check_equivalent(source, (BY_CODE["NAN103"],))] == ["NAN103"]
    assert body.splitlines()[-1] in screening.plan(source, [BY_CODE["NAN103"]]).text


@pytest.mark.parametrize("body", [
    "def f(x, depths):\n    n = len(depths)\n    return x / n\n",  # a parameter
    "class Net:\n    def __init__(self, blocks):\n        self.stages = torch.nn.Sequential(*blocks)\n\n"
    "    def f(self, x):\n        stages = self.stages\n        return x / len(self.stages)\n",  # a module list
    "def f(x, layers):\n    for block in layers:\n        x = x / block.numel()\n    return x\n",  # a loop variable
    "def f(sizes):\n    return [s / sum(sizes) for s in sizes]\n",  # Python's sum
    "def f(x, n):\n    w = x.len()\n    return x / w\n",  # not the builtin
])
def test_a_count_of_no_selection_keeps_nothing(body: str) -> None:
    source = "import torch\n" + PAD + "\n\n" + body
    assert lint(source, [BY_CODE["NAN103"]], second_stage=False) == []
    plan = screening.plan(source, [BY_CODE["NAN103"]])
    assert plan is not None and plan.text is None


@pytest.mark.parametrize("setter", [
    "self.n = x.norm()", "(self.n, other) = (x.norm(), 1)", "[first, *self.n] = x.norm(), 2",
    "for self.n in [x.norm()]:\n            pass", "with x.norm() as self.n:\n            pass",
    "if True:\n            self.n: object = x.norm()",
])
def test_every_attribute_target_counts_as_a_setter(setter: str) -> None:
    source = "import torch\n" + PAD + textwrap.dedent("""

        class Scaler(torch.nn.Module):
            def update(self, x):
                SETTER

            def forward(self, x):
                return x / self.n
        """).replace("SETTER", setter)
    assert lint(source, [BY_CODE["NAN101"]], second_stage=True) == lint(source, [BY_CODE["NAN101"]], second_stage=False)
    plan = screening.plan(source, [BY_CODE["NAN101"]])
    assert plan is not None and "return x / self.n" in plan.text


def test_import_inside_a_dropped_definition_still_counts() -> None:
    """The ImportTable is per file: an import in an earlier (dropped) function names torch for later code."""
    source = "import math\n\n\ndef setup():\n    import torch as th\n    return th\n" + PAD + \
        "\n\ndef rms(p, q):\n    return th.sqrt(((p - q) ** 2).mean())\n"
    found = check_equivalent(source, [BY_CODE["NAN201"]])
    assert [f[0] for f in found] == ["NAN201"]
    plan = screening.plan(source, [BY_CODE["NAN201"]])
    assert plan is not None and "import torch as th" in plan.text.split("\n")[3]


def test_lines_and_columns_are_preserved() -> None:
    source = "import torch\n" + PAD + "\n\nclass A:\n    def f(self, x):\n        return x / x.norm()  # noqa: NAN999\n"
    plan = screening.plan(source, [BY_CODE["NAN101"]])
    assert plan is not None and plan.sliced
    original, sliced = source.split("\n"), plan.text.split("\n")
    assert len(original) == len(sliced)
    for first, last in plan.dropped:
        assert sliced[first - 1].startswith("def unrelated_")
    kept = [i for i, line in enumerate(original) if not any(a - 1 <= i <= b - 1 for a, b in plan.dropped)]
    assert all(original[i] == sliced[i] for i in kept)
    compile(plan.text, "sliced", "exec")
    (finding,) = lint(source, [BY_CODE["NAN101"]])
    assert finding[2:6] == (len(original) - 1, 16, len(original) - 1, 28)


def test_suppression_and_fixes_are_identical() -> None:
    source = "import torch\n" + PAD + "\n\ndef f(x):\n    a = x / x.norm()  # noqa: NAN101\n" \
        "    h = torch.tanh(x)\n    return h / torch.sqrt((h ** 2).sum())\n"
    found = check_equivalent(source)
    assert [f[0] for f in found] == ["NAN101", "NAN201"]
    assert found[0][-1] is not None  # the fix is compared too


def test_nothing_hot_means_nothing_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    source = '"""Module docstring: y = x / x.norm()."""\nimport torch\n' + PAD  # screened words only in docstrings
    assert screened_rules([BY_CODE["NAN101"]], source)  # the first stage lets it through
    plan = screening.plan(source, [BY_CODE["NAN101"]])
    assert plan is not None and plan.text is None

    def refuse(*args, **kwargs):
        raise AssertionError("libcst must not run")

    monkeypatch.setattr(libcst, "parse_module", refuse)
    assert lint(source, [BY_CODE["NAN101"]]) == []


def test_first_indented_block_decides_default_indent() -> None:
    """libcst infers the module's indentation from the first block; a stub must not change what it infers."""
    source = "import torch\n\n\ndef first(x):\n  return x\n" + PAD + \
        "\n\ndef later(x):\n    return torch.sqrt(x.var())\n"
    found = check_equivalent(source, [BY_CODE["NAN201"]])
    assert [f[0] for f in found] == ["NAN201"]
    plan = screening.plan(source, [BY_CODE["NAN201"]])
    assert plan is not None and plan.indent == "  "


@pytest.mark.parametrize("source", [
    "import torch\r\n" + PAD.replace("\n", "\r\n") + "\r\ndef f(x):\r\n    return x / x.norm()\r\n",  # CRLF
    "import torch\n" + PAD + "\ndef f(x:\n    return x / x.norm()\n",  # syntax error
])
def test_plain_path_for_what_the_second_stage_does_not_handle(source: str) -> None:
    assert screening.plan(source, [BY_CODE["NAN101"]]) is None
    assert lint(source, ALL_RULES) == lint(source, ALL_RULES, second_stage=False)


def test_short_files_are_not_sliced() -> None:
    source = "import torch\n\ndef a(x):\n    return x\n\n\ndef b(x):\n    return x / x.norm()\n"
    plan = screening.plan(source, [BY_CODE["NAN101"]])
    assert plan is not None and not plan.sliced and plan.text == source


def test_rules_that_opt_out_see_the_whole_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BY_CODE["NAN101"], "chunk_local", False, raising=False)
    source = "import torch\n" + PAD + "\n\ndef f(x):\n    return x / x.norm()\n"
    assert screening.plan(source, [BY_CODE["NAN101"]]) is None


def test_decorated_and_async_definitions() -> None:
    source = "import torch\nimport functools\n" + PAD + textwrap.dedent("""

        @functools.lru_cache(
            maxsize=None,
        )
        async def cached(x):
            return x + 1


        @torch.no_grad()
        def g(x):
            return torch.sqrt(x.var())


        def h(x):
            return x / x.norm()
        """)
    check_equivalent(source)
    plan = screening.plan(source, screened_rules(ALL_RULES, source))
    assert plan is not None
    lines = source.split("\n")
    kept_g = lines.index("@torch.no_grad()") + 1
    assert not any(first <= kept_g <= last for first, last in plan.dropped)  # the decorator goes with g
    cached = lines.index("@functools.lru_cache(") + 1
    assert any(first == cached for first, _ in plan.dropped)  # a dropped definition takes its decorators along


@pytest.mark.parametrize("snippet, matches", [
    ("nn.LayerNorm(d, eps=0)", True), ("nn.LayerNorm(d, 0)", True), ("nn.GroupNorm(2, 8, 0.0)", True),
    ("F.layer_norm(x, (8,), eps=0)", True), ("nn.RMSNorm(eps=0)", True), ("nn.LayerNorm(int(d))", True),
    ("nn.LayerNorm(d  # size\n, eps=0)", True), ("nn.LayerNorm \\\n    (d, eps=0)", True),
    ("from torch.nn import LayerNorm as LN", True), ("F.rms_norm(x, s, EPS)", True),
    ("nn.LayerNorm(d)", False), ("nn.LayerNorm(config.hidden_size)", False), ("nn.LayerNorm(hidden_e)", False),
    ("norm_layer = nn.LayerNorm", False), ("LlamaRMSNorm(d, eps=config.eps)", False), ("my_layer_norm(x, s, 0)", False),
    ("torch.nn.functional.layer_norm(x, s, None, None, 0)", True), ("torch.rms_norm(x, s, eps=0)", True),
])
def test_zero_eps_screen_needs_an_eps_argument(snippet: str, matches: bool) -> None:
    """NAN502 reads eps from a keyword or the 2nd+ positional argument: a one-argument call cannot fire."""
    assert bool(BY_CODE["NAN502"].screen.search(snippet)) is matches


def test_nan_constants_come_from_names_the_screen_sees() -> None:
    """NAN604's screen sees ``inf`` (``inf - inf`` is NaN); an overflow of finite literals is never folded."""
    rule = BY_CODE["NAN604"]
    named = "import math, torch\n\n\ndef f(x):\n    return torch.where(x == math.inf - math.inf, 0.0, x)\n"
    assert rule.screen.search(named) and [f[0] for f in lint(named, [rule])] == ["NAN604"]
    for spelled in ("float('-iNf')", "float('Infinity')", "numpy.inf", "torch.nan"):
        assert rule.screen.search(spelled), spelled
    assert not rule.screen.search("logger.info(inference_mode)")
    for hidden in ("1e200 * 1e200 - 1e200 * 1e200", "1e400 - 1e400", "float('1e400') - float('1e400')"):
        source = f"import torch\n\n\ndef f(x):\n    return torch.where(x == {hidden}, 0.0, x)\n"
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(rule, "screen", EVERYTHING)
            assert lint(source, [rule], second_stage=False) == [], hidden


# NAN502's and NAN604's ``evidence_at`` (rules/_literal_evidence.py): a norm call counts only when its eps may
# fold to 0, a ``nan``/``inf`` only where a comparison or a binding may read it. Each of these is reported,
# sliced or not.
ZERO_EPS = {
    "keyword": "def f(d):\n    return torch.nn.LayerNorm(d, eps=0)\n",
    "position": "def f(x):\n    return F.group_norm(x, 2, None, None, 0.0)\n",
    "underflow": "def f(d):\n    return torch.nn.LayerNorm(d, eps=1e-200 * 1e-200)\n",
    "module constant": "EPS = 0.0\n\n\ndef f(d):\n    return torch.nn.LayerNorm(d, eps=EPS)\n",
    "default": "def f(d, eps=0.):\n    return torch.nn.LayerNorm(d, eps=eps)\n",
    "attribute from a default": "class N(torch.nn.Module):\n    def __init__(self, d, eps=0):\n"
                                "        self.eps = eps\n\n    def forward(self, x):\n"
                                "        return F.layer_norm(x, x.shape[-1:], None, None, self.eps)\n",
    "config dict": "cfg = {'eps': 0.0}\n\n\ndef f(d):\n    return torch.nn.LayerNorm(d, eps=cfg['eps'])\n",
    "key that is no name": "cfg = {'(eps': 0.0}\n\n\ndef f(d):\n    return torch.nn.LayerNorm(d, eps=cfg['(eps'])\n",
    "kwargs": "norm_kwargs = dict(eps=0)\n\n\ndef f(d):\n    return torch.nn.LayerNorm(d, **norm_kwargs)\n",
    "config field": "class Config:\n    eps: float = 0.0\n\n\ndef f(d):\n    config = Config()\n"
                    "    return torch.nn.LayerNorm(d, eps=config.eps)\n",
}


@pytest.mark.parametrize("case", sorted(ZERO_EPS))
def test_an_eps_that_may_be_zero_is_evidence(case: str) -> None:
    assert_reported_when_sliced("NAN502", "import torch\nimport torch.nn.functional as F\n", ZERO_EPS[case])


@pytest.mark.parametrize("body", [
    "def f(d, eps=1e-6):\n    return torch.nn.LayerNorm(d, eps=eps)\n",
    "class N(torch.nn.Module):\n    def __init__(self, eps=1e-5):\n        self.eps = eps\n\n"
    "    def copy(self, module):\n        self.eps = module.eps\n\n    def forward(self, x):\n"
    "        return F.group_norm(x, 2, None, None, self.eps)\n",  # ``module.eps``: what some ``.eps`` holds
    "def f(d):\n    return torch.nn.LayerNorm(d, 1e-5)\n",
    "def f(d, eps):\n    return torch.nn.LayerNorm(d, eps=eps)\n",  # a parameter: callers are not followed
    "def f(d):\n    return RmsNorm(d, eps=0)\n",  # not torch's norm
    "def layer_norm(x, s, eps=1e-5):\n    return x\n",
])
def test_an_eps_that_is_never_zero_keeps_nothing(body: str) -> None:
    assert_nothing_kept("NAN502", "import torch\nimport torch.nn.functional as F\nfrom timm.layers import RmsNorm\n", body)


NAN_COMPARED = {
    "literal": "def f(x):\n    return torch.where(x == float('nan'), 0.0, x)\n",
    "eq call": "def f(x):\n    return x.ne(\n        math.nan)\n",
    "local constant": "def f(x):\n    nan = float('inf') - float('inf')\n    return x != nan\n",
    "module constant": "INF = float('inf')\nNAN = INF - INF\n\n\ndef f(x):\n    return x == NAN\n",
    "default": "def f(x, missing=float('nan')):\n    return x == missing\n",
    "numpy's spelling": "import numpy as np\n\n\ndef f(x):\n    return x != np.NaN\n",
    "constant under another name": "MISSING = float('nan')\n\n\ndef f(x):\n    return x == MISSING\n",
    "renamed eq": "from torch import eq as same\n\n\ndef f(x):\n    return same(x, float('nan'))\n",
}


@pytest.mark.parametrize("case", sorted(NAN_COMPARED))
def test_a_nan_a_comparison_may_read_is_evidence(case: str) -> None:
    assert_reported_when_sliced("NAN604", "import math\nimport torch\n", NAN_COMPARED[case])


def test_an_infinity_no_comparison_reads_keeps_nothing() -> None:
    body = ("def f(scores, mask):\n    bias = scores.new_full(scores.shape, float('-inf')).triu_(1)\n"
            "    scores = scores.masked_fill(~mask, -math.inf)\n    fill = float('-inf')\n"
            "    if scores.max() == float('inf'):\n        return fill\n    return scores + bias\n")
    assert_nothing_kept("NAN604", "import math\nimport torch\n", body)


def test_a_comparison_that_shares_its_line_with_a_block_is_evidence() -> None:
    assert_reported_when_sliced("NAN604", "import torch\n",
                                "def f(x):\n    if x == float('nan'): x = torch.zeros_like(x)\n    return x\n")


# NAN402's ``evidence_at``: a -inf counts in a product, a binding, module-level code or a definition that holds
# a softmax (or anywhere, when module-level code names one). Each of these is reported, sliced or not.
NEG_INF_MASKS = {
    "same function": "def f(s, m):\n    s = s.masked_fill(~m, float('-inf'))\n    return F.softmax(s, dim=-1)\n",
    "bias set in __init__": "class A(torch.nn.Module):\n    def __init__(self, q, k):\n"
                            "        self.bias = torch.zeros(4, 4).masked_fill(~(q[:, None] & k[None, :]), -math.inf)\n\n"
                            "    def forward(self, s):\n        return torch.softmax(s + self.bias, -1)\n",
    "nn.Softmax under another name": "class A(torch.nn.Module):\n    def __init__(self):\n"
                                     "        self.attend = torch.nn.Softmax(dim=-1)\n\n"
                                     "    def forward(self, s, q, k):\n"
                                     "        s = s.masked_fill(~(q[:, None] & k[None, :]), float('-inf'))\n"
                                     "        return self.attend(s)\n",
    "renamed softmax": "from torch.nn.functional import softmax as sm\n\n\n"
                       "def f(s, q, k):\n    return sm(s.masked_fill(~(q[:, None] & k[None, :]), float('-inf')), -1)\n",
    "product with a constant": "NEG = float('-inf')\n\n\ndef f(s, keep):\n    return s + (1 - keep) * NEG\n",
    "product": "def f(s, keep):\n    bias = (1 - keep) * float('-inf')\n    return s + bias\n",
}


@pytest.mark.parametrize("case", sorted(NEG_INF_MASKS))
def test_a_neg_inf_a_softmax_or_product_may_read_is_evidence(case: str) -> None:
    assert_reported_when_sliced("NAN402", "import math\nimport torch\nimport torch.nn.functional as F\n",
                                NEG_INF_MASKS[case])


def test_a_neg_inf_bias_a_helper_returns_keeps_nothing() -> None:
    body = ("def causal_bias(n, mask):\n    bias = torch.zeros(n, n).masked_fill(~mask, float('-inf'))\n"
            "    bias.masked_fill_(mask, float('-inf'))\n    return bias\n\n\n"
            "def attend(s, bias):\n    return F.softmax(s + bias, dim=-1)\n")
    assert_nothing_kept("NAN402", "import torch\nimport torch.nn.functional as F\n", body)


@pytest.mark.parametrize("names", [{"eps"}, {"eps", "n"}, {"x", "x_y", "xy"}, {"("}, {"key", "(", "a.b"},
                                   {"é", "n2"}, {f"name{i}" for i in range(25)}])
def test_word_pattern_matches_what_a_pattern_between_word_boundaries_does(names: set[str]) -> None:
    """``screening.word_pattern`` writes each name literal-first (the ``\\b`` before it a look back): the same
    matches as ``\\b(?:...)\\b``, whatever characters a name begins or ends with."""
    from nanlint.screening import word_pattern

    joined = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, names))) + r")\b")
    texts = ["eps + n", "neps n_ n2", "x_y xy x.x_y", "f(x) (a (", "key(key a.b za.b", "é éé n2é", "",
             " ".join(sorted(names)), "_".join(sorted(names)), "name3 name33 xname3 name24(name2)"]
    for text in texts:
        assert [m.span() for m in word_pattern(names).finditer(text)] == \
               [m.span() for m in joined.finditer(text)], text


def test_the_kept_text_is_parsed_without_node_checks_and_the_checks_come_back() -> None:
    """``cst_pass.parse_kept`` skips libcst's per-node checks while it parses a text the stdlib parser accepted
    (the tree is the same), and restores them after, on success and on failure: nodes built later (a fix's) are
    checked."""
    import libcst as cst

    from nanlint import cst_pass
    from nanlint.cst_pass import parse_kept

    assert cst_pass._SKIPPABLE  # this libcst's ``__post_init__`` only validates (else the checks stay on)
    text = "def f(x):\n    return (x / x.norm())[0]  # c\n"
    assert parse_kept(text).code == text
    assert parse_kept(text).deep_equals(cst.parse_module(text))
    assert parse_kept("def f(:\n") is None
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


def test_a_match_after_a_hash_with_no_quote_before_it_is_in_a_comment_or_a_string() -> None:
    """``screening._after_hash``: the second stage takes no evidence or division site from such a match (a
    comment, or a string the line began in); a ``#`` after a quote may be in a string, and what follows it code."""
    from nanlint.screening import _after_hash

    def at(source: str, word: str) -> bool:
        return _after_hash(source, source.index(word))

    assert at("d = 2  # must divide q ** (n - 1)\n", "divide")
    assert at('s = """\ntext # then x / y.norm()\n"""\n', "norm")  # inside the string the line began in
    assert not at("y = x / x.norm()  # ok\n", "norm")
    assert not at('k = "#" + x / x.norm()\n', "norm")  # the hash is in a string; the code follows it
    assert not at('s = """a\n" # " + x / x.norm()\n', "norm")  # a quote before the hash: undecided, kept


VANISHING_SUM = "g = p.grad\ng2 = (g * g).sum()\ny = g2 / (2 * g2 + (a * g ** 3).sum())\n"
VANISHING_SUM_ON_LINES = VANISHING_SUM.replace("/ (2 * g2", "/ (\n    2 * g2").replace(".sum())", ".sum()\n)")
HOT_FUNCTION = "\n\ndef h(x):\n    return x / x.norm()\n"
VANISHING_SUM_SLASH_BELOW = VANISHING_SUM.replace(
    "y = g2 / (2 * g2 + (a * g ** 3).sum())",
    "y = {\n    'url': 'https://host/a/b',\n    'ratio': g2\n    / (2 * g2 + (a * g ** 3).sum()),\n}")


@pytest.mark.parametrize("rules", [ALL_RULES, (BY_CODE["NAN101"],)], ids=["all-rules", "NAN101"])
@pytest.mark.parametrize("body", [VANISHING_SUM, VANISHING_SUM_ON_LINES, VANISHING_SUM_ON_LINES + HOT_FUNCTION,
                                  VANISHING_SUM_SLASH_BELOW],
                         ids=["one-line", "multi-line", "multi-line-beside-a-hot-function", "slash-lines-below"])
@pytest.mark.parametrize("head", ["import torch\n", '"""A module docstring first."""\nimport torch\n'],
                         ids=["import-first", "docstring-first"])
def test_a_module_level_division_by_a_vanishing_sum_is_kept_whatever_the_first_line(head: str, body: str,
                                                                                    rules) -> None:
    """NAN101's file-level condition (a ``+`` and a square) starts its screen at 0: that zero-width match is no
    evidence in module-level code. A module-level statement that divides by what may be a sum keeps the module
    level instead, and is never stubbed as an unread assignment. Before, the docstring-first file's finding was
    lost (its start fell in the docstring), and so was the multi-line statement's with NAN101 alone."""
    source = head + PAD + "\n\n" + body
    found = [f[0] for f in check_equivalent(source, rules)]
    assert found == ["NAN101"] * (1 + (HOT_FUNCTION in body))


def test_the_file_condition_alone_keeps_no_module_level_code_without_a_sum_divisor() -> None:
    """The condition holds (``+``, ``g * g``), module-level code divides by a name no sum is assigned to and by a
    number in a URL: nothing can fire, nothing is parsed."""
    source = ("import torch\nURL = 'https://host/a/b'\nHALF = 1 / 2\n" + PAD + "\n\n"
              "def f(g):\n    return (g * g).sum() + 1\n")
    rule = BY_CODE["NAN101"]
    assert rule.screen.search(source) is not None  # the first stage lets it through
    assert screening.plan(source, [rule]).text is None
    assert screening.plan(source.replace("HALF = 1 / 2", "HALF = 1 / (g1 + g2)"), [rule]).text is not None
    # a positive term keeps a sum off 0 (``Bindings.is_positive``): no divisor
    assert screening.plan(source.replace("HALF = 1 / 2", "HALF = 1 / (2 + g2)"), [rule]).text is None


CHAINED_SUM = ("class Step:\n    def __init__(self, g):\n        g2 = (g * g).sum()\n"
               "        total = 2 * g2 + (g ** 3).sum()\n        kept = total\n        self.denominator = kept\n"
               "        self.g2 = g2\n\n    def ratio(self):\n        return self.g2 / self.denominator\n")


@pytest.mark.parametrize("rules", [ALL_RULES, (BY_CODE["NAN101"],)], ids=["all-rules", "NAN101"])
def test_a_divisor_is_a_sum_through_any_chain_of_plain_assignments(rules) -> None:
    """``Bindings.resolve`` follows ``self.denominator = kept``, ``kept = total`` to ``total = a + b``: the
    second stage's ``_may_be_sum`` follows the same chain (``Assignments.reaches``), at any length."""
    assert [f[0] for f in check_equivalent("import torch\n" + PAD + "\n\n" + CHAINED_SUM, rules)] == ["NAN101"]


def test_a_divisor_a_chain_leads_to_no_sum_keeps_nothing() -> None:
    """A temperature set from a parameter (``self.t = t``) in a file with squares and sums: no chain of plain
    assignments reaches a ``+``, so the division cannot be a vanishing sum and nothing is parsed. Before, any name
    assigned another name counted as a sum (timm's distillation tasks: 250 lines parsed for nothing)."""
    assert_nothing_kept("NAN101", "import torch\n", (
        "class Distill:\n    def __init__(self, temperature=1.0):\n        t = temperature\n"
        "        self.temperature = t\n\n    def loss(self, s, p):\n        total = s.sum() + p.sum()\n"
        "        return (s / self.temperature).sum() * self.temperature ** 2 + total\n"))
    chained = CHAINED_SUM.replace("total = 2 * g2 + (g ** 3).sum()", "total = 2 * g2 - (g ** 3).sum() + 1")
    assert_nothing_kept("NAN101", "import torch\n", chained.replace("kept = total", "kept = g2"))


def test_a_chain_to_a_sum_passes_through_parameter_defaults_for_sums_only() -> None:
    """``Bindings.resolve`` follows a parameter to its default (``def h(x, d=s1 + s2)``: ``vanishing_sum`` reads
    ``d`` as that sum); ``Bindings.assignment``, which selections use, does not. ``Assignments.reaches`` follows
    defaults only when asked, and ``_may_be_sum`` asks."""
    import ast

    from nanlint.rules._screens import Assignments, _may_select
    from nanlint.screening import _may_be_sum, _sum_value

    source = ("def h(x, d=s1 + s2, *, k=x[m]):\n    e = d\n    picked = k\n    return x / e\n"
              "f = lambda y, w=s1 + s2: y / w\n")
    assignments = Assignments(ast.parse(source), source)
    assert _may_be_sum(ast.Name("e"), assignments) and _may_be_sum(ast.Name("w"), assignments)
    assert not assignments.reaches("e", _sum_value)  # without the defaults
    assert not assignments.reaches("picked", _may_select)  # a selection does not pass through a default
    assert not _may_be_sum(ast.Name("picked"), assignments)


def test_a_length_is_a_selection_count_through_a_chain_of_plain_assignments() -> None:
    """NAN103's ``len(name)``: ``selections.selection`` follows names to their assignments at any depth; the
    screen's ``count_evidence`` follows the same chain and drops a length whose chain reaches no selection."""
    hot = ("def f(loss, scores, threshold):\n    keep = scores > threshold\n    picked = loss[keep]\n"
           "    rows = picked\n    return loss[keep].sum() / len(rows)\n")
    assert_reported_when_sliced("NAN103", "import torch\n", hot)
    cold = hot.replace("picked = loss[keep]", "picked = loss").replace("loss[keep].sum()", "loss[keep].mean()")
    assert_nothing_kept("NAN103", "import torch\n", cold)


def test_the_second_stage_leaves_no_stdlib_tree_for_the_collector_to_free() -> None:
    """The second stage's evidence tests share a memo with the file's stdlib tree in it; a function that closed over
    that memo made a cycle, and the whole tree waited for the collector, whose next young collection then walked
    it node by node (4 % of a worker's time on transformers). Reference counting alone frees it now."""
    import ast
    import gc

    source = ("import torch\nfrom torch import nn\nEPS = 0.0\n" + PAD + "\n\n"
              "class Block(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
              "        self.norm = nn.LayerNorm(d, eps=EPS)\n")
    assert screening.plan(source, [BY_CODE["NAN502"]]).text is not None  # the memo's literals were read
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        lint_source("m.py", source, LintRequest(tuple(ALL_RULES)))
        gc.collect()
        left = [node for node in gc.garbage if isinstance(node, ast.Module)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left


def test_no_tree_of_any_fixture_is_left_for_the_collector() -> None:
    """Every fixture, every rule: what a lint leaves unreachable holds no libcst node and no stdlib tree (a
    recursive closure over the analysis's reads, or over the imports a fix scans, kept them for the collector)."""
    import ast
    import gc

    lint(sources()[0].read_text(encoding="utf-8"), ALL_RULES)  # imports and first-use caches, outside the count
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    left: dict[str, int] = {}
    try:
        for path in sources():
            lint(path.read_text(encoding="utf-8"), ALL_RULES, str(path), precision=("float16",))
            gc.collect()
            trees = sum(isinstance(o, (libcst.CSTNode, ast.Module)) for o in gc.garbage)
            if trees:
                left[path.name] = trees
            gc.garbage.clear()
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left


def test_the_second_stages_walk_is_ast_walk() -> None:
    """``_screens.walk`` and ``children`` find what ``ast.walk`` and ``ast.iter_child_nodes`` find, in their order
    (the second stage's conditions read the first match a walk meets)."""
    import ast

    from nanlint.rules._screens import children, walk

    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        expected = list(ast.walk(tree))
        assert [id(node) for node in walk(tree)] == [id(node) for node in expected], path
        for node in expected[::7]:
            assert children(node) == list(ast.iter_child_nodes(node)), (path, ast.dump(node)[:80])
