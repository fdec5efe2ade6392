"""What input makes a value exactly zero, and how ordinary that input is in training.

A hazard needs its trigger: ``x / x.norm()`` is NaN only for a zero vector. Where
``x`` comes from decides whether that happens in practice:

================================  ==========================================  ============
where the vector comes from       the trigger                                 likelihood
================================  ==========================================  ============
``x * mask``, ``masked_fill``     an all-padding row                          ordinary
``a - b``                         two equal inputs (a perfect prediction)     ordinary
a function's parameter            a zero (or constant) input row              plausible
``relu(...)``                     a row that ReLU zeroes                      plausible
``p.grad``                        a zero gradient (a frozen or unused param)  plausible
a module call ``self.proj(h)``    a learned projection exactly 0              degenerate
``randn`` / a ``noise`` tensor    a Gaussian sample exactly 0                 degenerate
``self.weight``, ``nn.Parameter`` a trained parameter exactly 0               degenerate
================================  ==========================================  ============

A parameter is judged by its name first (:data:`NAME_PRIORS`): callers are
unseen, and ``noise_pred`` or ``latents`` are model outputs whatever the
function does with them. Anything not followed is *unknown*, which counts as
degenerate: a finding is shown by default only when an ordinary or plausible
input is seen to reach it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from ..names import match_call

if TYPE_CHECKING:
    from ..facts import At, Facts

ORDINARY = "ordinary"
PLAUSIBLE = "plausible"
DEGENERATE = "degenerate"
IMPOSSIBLE = "impossible"  # a boolean filter removed every zero
_RANK = {ORDINARY: 2, PLAUSIBLE: 1, DEGENERATE: 0, IMPOSSIBLE: -1}


@dataclass(frozen=True)
class Trigger:
    """The input that makes a value exactly 0 (``text``, for messages) and how ordinary it is."""

    text: str
    likelihood: str

    def at_least(self, likelihood: str) -> bool:
        return _RANK[self.likelihood] >= _RANK[likelihood]


UNKNOWN = Trigger("an input nanlint cannot see", DEGENERATE)
LEARNED = Trigger("a learned projection exactly 0", DEGENERATE)
SAMPLE = Trigger("a Gaussian sample exactly 0", DEGENERATE)
PARAMETER = Trigger("a trained parameter exactly 0", DEGENERATE)
PADDING = Trigger("an all-padding (fully masked) row", ORDINARY)
EQUAL = Trigger("two equal inputs (a perfect prediction, coincident points)", ORDINARY)
INPUT = Trigger("a zero or constant input row", PLAUSIBLE)
DEAD_RELU = Trigger("a row that ReLU zeroes", PLAUSIBLE)
ZERO_GRAD = Trigger("a zero gradient (a frozen or unused parameter)", PLAUSIBLE)
FILTERED = Trigger("nothing: a boolean filter keeps only non-zero values", IMPOSSIBLE)
CONSTANT = Trigger("a configuration value of 0", DEGENERATE)
# a normalisation layer's input row is exactly 0 at a padding token whose embedding row is 0
# (``nn.Embedding(padding_idx=...)`` initialises it to zeros)
ZERO_ROW = Trigger("a zero hidden row (an `nn.Embedding` padding_idx row is 0)", PLAUSIBLE)

# Parameter names that say what callers pass (documented in docs/analysis.md).
NAME_PRIORS: tuple[tuple[re.Pattern[str], Trigger], ...] = (
    (re.compile(r"noise|latent|eps_pred|v_pred|model_output|sample$", re.I), SAMPLE),
    (re.compile(r"(^|_)(logits?|hidden(_states?)?|last_hidden|pooled|pooler_output|proj(ection)?s?|"
                r"(text|image|vision|audio|prompt|video|query|key|value)_?(embeds?|embeddings?|features?))$",
                re.I), LEARNED),
    (re.compile(r"weight|kernel|codebook|centroids?|prototypes?", re.I), PARAMETER),
    (re.compile(r"mask", re.I), PADDING),
)
_MASKING = frozenset({"masked_fill", "masked_fill_", "where", "mul", "multiply"})
_TRANSPARENT = frozenset({
    "view", "reshape", "view_as", "reshape_as", "unsqueeze", "squeeze", "flatten", "permute", "transpose", "t",
    "contiguous", "clone", "detach", "expand", "expand_as", "to", "float", "double", "half", "bfloat16", "type",
    "type_as", "cpu", "cuda", "narrow", "select", "index_select", "gather", "repeat", "flip", "roll", "chunk",
    "split", "unbind", "movedim", "squeeze_", "unsqueeze_", "T", "mT",
})
# ops that are 0 exactly when their operand is (a zero vector, a constant input)
_MEASURES = frozenset({
    "sum", "mean", "nansum", "nanmean", "abs", "absolute", "clamp", "clamp_min", "clip", "pow", "square", "cumsum",
    "norm", "linalg.norm", "linalg.vector_norm", "linalg.matrix_norm", "dist", "std", "var", "std_mean", "var_mean",
    "sqrt", "rsqrt", "square_", "sqrt_", "amax", "max",
})
_LOSSES = frozenset({"F.mse_loss", "F.l1_loss", "F.smooth_l1_loss", "F.huber_loss"})
_SAMPLERS = frozenset({"randn", "rand", "randn_like", "rand_like", "normal", "normal_", "uniform_", "randint"})


def trigger_of(facts: "Facts", expr: cst.BaseExpression, at: "At", depth: int = 0) -> Trigger:
    """The trigger that makes the vector ``expr`` exactly zero (see the module docstring)."""
    if depth > 12:
        return UNKNOWN
    d = depth + 1
    if isinstance(expr, cst.Subscript):
        if _nonzero_filter(facts, expr, at):
            return FILTERED
        return trigger_of(facts, expr.value, at, d)
    if isinstance(expr, cst.Attribute):
        if expr.attr.value == "grad":
            return ZERO_GRAD
        if expr.attr.value in ("T", "mT", "data"):
            return trigger_of(facts, expr.value, at, d)
    if isinstance(expr, (cst.Name, cst.Attribute)):
        binding = facts.binding(expr, at)
        name = expr.value if isinstance(expr, cst.Name) else expr.attr.value
        if binding is None or binding.value is None or binding.is_parameter:
            if binding is not None and binding.is_parameter or _is_self_attribute(expr):
                prior = _prior(name)
                if prior is not None:
                    return prior
                return INPUT if binding is not None and binding.is_parameter else PARAMETER
            prior = _prior(name)
            return prior if prior is not None else UNKNOWN
        where = type(at)(binding.scope, binding.order)
        if isinstance(binding.operator, (cst.MultiplyAssign, cst.DivideAssign)) and binding.previous is not None:
            previous = binding.previous  # ``x /= n`` is 0 where ``x`` was
            if previous.is_parameter or previous.value is None:
                return _prior(name) or (INPUT if previous.is_parameter else UNKNOWN)
            return trigger_of(facts, previous.value, type(at)(previous.scope, previous.order), d)
        if binding.operator is not None or binding.index is not None:
            prior = _prior(name)
            if prior is not None:
                return prior
            if binding.index is not None:
                passed = _passed_through(binding.value, name)
                if passed is not None:
                    return trigger_of(facts, passed, where, d)
                return trigger_of(facts, binding.value, where, d)
            return UNKNOWN
        passed = _passed_through(binding.value, name)
        if passed is not None:
            return trigger_of(facts, passed, where, d)
        return trigger_of(facts, binding.value, where, d)
    if isinstance(expr, cst.BinaryOperation):
        op = expr.operator
        if isinstance(op, cst.Subtract):
            return EQUAL
        if isinstance(op, cst.Multiply):
            left, right = trigger_of(facts, expr.left, at, d), trigger_of(facts, expr.right, at, d)
            if PADDING in (left, right):
                return PADDING
            return _most_likely(left, right)
        if isinstance(op, cst.MatrixMultiply):
            return LEARNED
        if isinstance(op, (cst.Add,)):
            return _least_likely(trigger_of(facts, expr.left, at, d), trigger_of(facts, expr.right, at, d))
        if isinstance(op, (cst.Divide, cst.Power)):
            return trigger_of(facts, expr.left, at, d)
        return UNKNOWN
    if isinstance(expr, cst.UnaryOperation):
        return trigger_of(facts, expr.expression, at, d)
    if isinstance(expr, cst.Call):
        return _call_trigger(facts, expr, at, d)
    return UNKNOWN


def _call_trigger(facts: "Facts", call: cst.Call, at: "At", depth: int) -> Trigger:
    tc = match_call(call, facts.imports)
    if tc is None:
        source = facts.zero_source(call, at)
        if source is not None and source.kind == "MSE":
            return EQUAL  # ``criterion(pred, target)`` with ``criterion = nn.MSELoss()``
        return LEARNED  # ``model(x)``, ``encoder(x)``: a user module or function
    key = tc.key
    if key in _SAMPLERS:
        return SAMPLE
    if key in ("relu", "F.relu", "relu_", "F.relu6", "relu6"):
        return DEAD_RELU
    if key in _MASKING:
        if key in ("masked_fill", "masked_fill_"):
            return PADDING
        if key == "where":
            return PADDING
        other = tc.positional(0)
        left = trigger_of(facts, tc.operand, at, depth) if tc.operand is not None else UNKNOWN
        right = trigger_of(facts, other, at, depth) if other is not None else UNKNOWN
        return PADDING if PADDING in (left, right) else _most_likely(left, right)
    if key in ("sub", "subtract"):
        return EQUAL
    if key in ("cat", "stack", "concat", "concatenate"):
        return UNKNOWN
    if key in ("F.linear", "matmul", "mm", "bmm", "einsum", "F.conv1d", "F.conv2d", "F.embedding", "linear"):
        return LEARNED
    if key in _LOSSES:
        return EQUAL  # a perfect prediction
    if tc.operand is not None and (key in _TRANSPARENT or key in _MEASURES):
        return trigger_of(facts, tc.operand, at, depth)
    source = facts.zero_source(call, at)
    if source is not None and source.kind == "MSE":
        return EQUAL  # ``criterion(pred, target)`` with ``criterion = nn.MSELoss()``
    if tc.is_method:
        return LEARNED  # ``self.proj(h)``, ``outputs.encoder(...)``: a module or a model's method
    return UNKNOWN


def _passed_through(value: cst.BaseExpression, name: str) -> Optional[cst.BaseExpression]:
    """``x = check(x, ...)`` / ``x, y = _check_input(x, y)``: a plain function (not a module on ``self``)
    that takes the name it rebinds validates or converts it; the value keeps its origin."""
    if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
        return None
    for arg in value.args:
        if isinstance(arg.value, cst.Name) and arg.value.value == name:
            return arg.value
    return None


def _nonzero_filter(facts: "Facts", expr: cst.Subscript, at: "At") -> bool:
    """``x[s != 0]`` / ``x[x.sum(1) > 0]`` / ``x[keep]`` with ``keep = e != 0``: only non-zero entries or rows."""
    if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
        return False
    test, _ = facts.resolve(expr.slice[0].slice.value, at)
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    target = test.comparisons[0]
    if not isinstance(target.operator, (cst.NotEqual, cst.GreaterThan)):
        return False
    return facts.literal(target.comparator, at) == 0


def _is_self_attribute(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value in ("self",)


def at_least_plausible(trigger: Trigger, floor: Trigger) -> Trigger:
    """``trigger``, or ``floor`` when the hazard has an ordinary source the provenance cannot show."""
    return trigger if _RANK[trigger.likelihood] >= _RANK[floor.likelihood] else floor


def _prior(name: str) -> Optional[Trigger]:
    for pattern, trigger in NAME_PRIORS:
        if pattern.search(name):
            return trigger
    return None


def _most_likely(a: Trigger, b: Trigger) -> Trigger:
    return a if _RANK[a.likelihood] >= _RANK[b.likelihood] else b


def _least_likely(a: Trigger, b: Trigger) -> Trigger:
    return a if _RANK[a.likelihood] <= _RANK[b.likelihood] else b
