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

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from ..names import TorchCall, match_call
from .ops import MASKING as _MASKING, MEANS as _MEANS, MEASURES as _MEASURES, ORDER_STATISTICS as _ORDER_STATISTICS, REGRESSION_LOSSES as _LOSSES, SPREADS as _SPREADS
from .ops import CONSTANT_FACTORIES as _CONSTANT_FACTORIES, SAMPLERS as _SAMPLERS
from .ops import TENSOR_VALUE_KEEPING as _TRANSPARENT, ZERO_FACTORIES as _ZERO_FACTORIES
from .summary import last_assignment
from .vocabulary import INDICATOR_NAME, same_vector

if TYPE_CHECKING:
    from ..facts import At, Facts
    from .summary import ModuleSummary

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
# a batch compared with itself: the diagonal of ``e[:, None] - e[None, :]`` or of ``|x|^2 + |x|^2 - 2 x.x``
SELF_PAIR = Trigger("the diagonal of a batch's distances to itself (each row paired with itself, every batch)",
                    ORDINARY)
CONSTANT_INPUT = Trigger("a constant input (every entry equal: equal advantages, a blank image, silence)", ORDINARY)
INPUT = Trigger("a zero or constant input row", PLAUSIBLE)
# an RL batch of returns or advantages: equal (all 0) in every batch of a sparse-reward episode
REWARDS = Trigger("equal returns or advantages (a sparse reward: every reward 0)", ORDINARY)
DEAD_RELU = Trigger("a row that ReLU zeroes", PLAUSIBLE)
FLAT_GRADIENT = Trigger("a zero input gradient (the network is flat there: every ReLU inactive)", PLAUSIBLE)
ZERO_GRAD = Trigger("a zero gradient (a frozen or unused parameter)", PLAUSIBLE)
ALIGNED = Trigger("parallel vectors (a cosine of exactly +-1, e.g. an embedding aligned with its class weight)",
                  ORDINARY)
EXPECTED = Trigger("the zero the author's eps outside the root was written for", ORDINARY)
SWAPPED = Trigger("nothing: a `where` swaps in a safe non-zero value", IMPOSSIBLE)
FILTERED = Trigger("nothing: a boolean filter keeps only non-zero values", IMPOSSIBLE)
CONSTANT = Trigger("a configuration value of 0", DEGENERATE)
FIXED = Trigger("nothing data-dependent: a tensor computed from constants", DEGENERATE)
# a normalisation layer's input row is exactly 0 at a padding token whose embedding row is 0
# (``nn.Embedding(padding_idx=...)`` initialises it to zeros)
ZERO_ROW = Trigger("a zero hidden row (an `nn.Embedding` padding_idx row is 0)", PLAUSIBLE)

# counts (NAN103): what makes a number of selected items, a degree or a bin count 0
EMPTY_SELECTION = Trigger("an empty selection", ORDINARY)
IGNORED_ROW = Trigger("a row whose labels are all `ignore_index` (a prompt-only row)", ORDINARY)
IGNORED_BATCH = Trigger("a batch whose labels are all `ignore_index`", PLAUSIBLE)
ISOLATED = Trigger("an isolated node (no edge, degree 0)", ORDINARY)
NO_POSITIVE = Trigger("an anchor whose label no other sample in the batch shares (a class seen once)", ORDINARY)
EMPTY_BIN = Trigger("an empty bin (an isolated node, an expert or class that no entry falls in)", ORDINARY)
# tanh rounds to exactly +-1 once its argument is large (docs/probe.md row 61): a squashed Gaussian's log-det
# ``log(1 - tanh(u) ** 2)`` (SAC) is log(0) there, ``atanh(tanh(u))`` is inf
SATURATED_TANH = Trigger("a pre-tanh value beyond tanh's saturation (|u| above 9.02 in float32, 4.51 in float16, "
                         "3.47 in bfloat16)", PLAUSIBLE)
# a dataset's actions, clipped to the action space's bounds (offline RL: D4RL stores actions of exactly +-1)
BOUNDARY_ACTION = Trigger("an action exactly at the bound of its space (offline datasets clip actions to +-1)",
                          PLAUSIBLE)
NO_EVENT = Trigger("a mini-batch in which every sample is censored (no event)", ORDINARY)
ABSENT_CATEGORY = Trigger("a category no sample in the batch falls in (an unused codebook entry, a class absent "
                          "from the batch)", ORDINARY)
_LABELS = re.compile(r"(?i)(?:^|_)(?:labels?|targets?|ignore_index|ignore_idx)$")

MASKED_MODELLING = Trigger("a masked-modelling batch with no masked position (a mask ratio of 0)", DEGENERATE)
# a log-variance / log-std a layer predicts (a VAE's or a Gaussian policy's head): exactly 0 only by accident,
# but unbounded above, so ``exp`` of it overflows once training drifts (:func:`overflow_trigger`)
LOG_SCALE = Trigger("a predicted log-scale (log-variance, log-std) exactly 0", DEGENERATE)
# Parameter names that say what callers pass (documented in docs/analysis.md).
NAME_PRIORS: tuple[tuple[re.Pattern[str], Trigger], ...] = (
    (re.compile(r"(^|_)log_?(var(iance)?s?|std(dev)?s?|sigmas?|scales?)$", re.I), LOG_SCALE),
    (re.compile(r"noise|latent|eps_pred|v_pred|model_output|sample$", re.I), SAMPLE),
    (re.compile(r"(^|_)(logits?|hidden(_states?)?|last_hidden|pooled|pooler_output|proj(ection)?s?|pred_u?n?cond|"
                r"u?n?cond_pred|noise_pred|pred_text|pred_uncond|model_pred|"
                r"(text|image|vision|audio|prompt|video|query|key|value)_?(embeds?|embeddings?|features?))$",
                re.I), LEARNED),
    (re.compile(r"weight|kernel|codebook|centroids?|prototypes?", re.I), PARAMETER),
    (re.compile(r"(^|_)(adv|advs|advantages?|returns?|rewards?|td_targets?|discounted_\w+)$", re.I), REWARDS),
    # masked-modelling masks (MAE, BEiT, wav2vec2 SpecAugment): random with a configured ratio, empty only
    # when the ratio is 0
    (re.compile(r"masked_pos|mask_time_indices|mask_feature_indices|mask_indices|random_mask", re.I),
     MASKED_MODELLING),
    (re.compile(r"mask", re.I), PADDING),
)


def trigger_of(facts: "Facts", expr: cst.BaseExpression, at: "At", depth: int = 0) -> Trigger:
    """The trigger that makes the vector ``expr`` exactly zero (see the module docstring)."""
    if depth > 12:
        return UNKNOWN
    d = depth + 1
    if isinstance(expr, cst.Subscript):
        if nonzero_filter(facts, expr, at):
            return FILTERED
        return trigger_of(facts, expr.value, at, d)
    if isinstance(expr, cst.Attribute):
        if expr.attr.value == "grad":
            return ZERO_GRAD
        if expr.attr.value in ("T", "mT", "data"):
            return trigger_of(facts, expr.value, at, d)
        if expr.attr.value == "values" and isinstance(expr.value, cst.Call):
            return trigger_of(facts, expr.value, at, d)  # ``d2.min(dim=1).values``: as ``d2.min(dim=1)``
    if isinstance(expr, (cst.Name, cst.Attribute)):
        binding = facts.binding(expr, at)
        name = expr.value if isinstance(expr, cst.Name) else expr.attr.value
        if binding is None or binding.value is None or binding.is_parameter:
            if _is_self_attribute(expr):
                # module state (weights, buffers, fixed windows); a rollout buffer's returns are data
                return REWARDS if _prior(name) is REWARDS else PARAMETER
            if binding is not None and binding.is_parameter:
                # what the module's callers pass is more specific than the parameter's name
                function = binding.scope.node
                if isinstance(function, cst.FunctionDef) and facts.summary is not None:
                    passed = parameter_trigger(facts.summary, function, name)
                    if passed is not None:
                        return passed
                prior = _prior(name)
                return prior if prior is not None else INPUT
            prior = _prior(name)
            return prior if prior is not None else UNKNOWN
        where = type(at)(binding.scope, binding.order)
        if _is_self_attribute(expr) and _allocation(facts, binding.value, where):
            # ``self.advantages = torch.zeros(n)`` in ``__init__``: a buffer other methods fill, not its zeros
            return REWARDS if _prior(name) is REWARDS else PARAMETER
        if isinstance(expr, cst.Name) and binding.operator is None and facts.in_place_calls(name, binding, at):
            source = facts.zero_source(expr, at)  # ``dist = xx + yy; dist.addmm_(x, y.t(), alpha=-2)``
            if source is not None and source.kind == "expanded squared distance":
                return _distance_trigger(facts, expr, at)
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
    if isinstance(expr, (cst.Name, cst.Call, cst.BinaryOperation)) and facts.is_constant(expr, at):
        return FIXED  # a positional table built from arange/sin/cos: its value does not depend on data
    if isinstance(expr, cst.BinaryOperation):
        op = expr.operator
        source = facts.zero_source(expr, at) if isinstance(op, (cst.Add, cst.Subtract)) else None
        if source is not None and source.kind == "expanded squared distance":
            return _distance_trigger(facts, expr, at)  # also ``sq[None] - 2 * dot + sq[:, None]``, an addition
        if isinstance(op, cst.Subtract):
            if source is not None and source.kind == "one minus a squared cosine":
                return ALIGNED
            if source is not None and source.kind == "range (max - min)":
                operand = facts.range_operand(expr, at)  # 0 where the operand is constant, as its std
                return spread_trigger(trigger_of(facts, operand, at, d)) if operand is not None else INPUT
            if same_vector(expr.left, expr.right):
                return SELF_PAIR  # ``e[:, None] - e[None, :]``: each row minus itself on the diagonal
            # ``grid - k_half``: zero where the other side equals a constant, whatever that side is
            if facts.literal(expr.right, at) is not None or _is_self_attribute(expr.right):
                return trigger_of(facts, expr.left, at, d)
            if facts.literal(expr.left, at) is not None:
                return trigger_of(facts, expr.right, at, d)
            if _mean_of(facts, expr.right, expr.left, at):
                return INPUT  # ``x - x.mean(dim)``: 0 only where x is constant along dim
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
    if isinstance(expr, cst.Comparison):
        # a mask is empty according to what it compares: ``self.weights > 0`` is module state
        if _is_self_attribute(expr.left) or (isinstance(expr.left, cst.Attribute) and _is_self_attribute(
                expr.left.value)):
            return PARAMETER
        return UNKNOWN
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
    if key == "autograd.grad":
        return FLAT_GRADIENT  # a gradient penalty's input gradient
    if key in ("relu", "F.relu", "relu_", "F.relu6", "relu6"):
        return DEAD_RELU
    if key == "where":
        return _where_trigger(facts, tc, at, depth)
    if key in _MASKING:
        if key in ("masked_fill", "masked_fill_"):
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
    if tc.operand is not None and key in _SPREADS:
        return spread_trigger(trigger_of(facts, tc.operand, at, depth))
    if tc.operand is not None and key in ("tensor", "as_tensor") and not tc.is_method:
        return trigger_of(facts, tc.operand, at, depth)  # ``torch.tensor(returns)``: what the list holds
    if tc.operand is not None and (key in _TRANSPARENT or key in _MEASURES or key in _ORDER_STATISTICS):
        return trigger_of(facts, tc.operand, at, depth)  # ``d2.min(dim=1)``: an entry of ``d2``
    source = facts.zero_source(call, at)
    if source is not None and source.kind == "MSE":
        return EQUAL  # ``criterion(pred, target)`` with ``criterion = nn.MSELoss()``
    if tc.is_method:
        return LEARNED  # ``self.proj(h)``, ``outputs.encoder(...)``: a module or a model's method
    return UNKNOWN


def _where_trigger(facts: "Facts", tc: "TorchCall", at: "At", depth: int) -> Trigger:
    """``where(c, x, 0)`` zeroes the rows ``c`` drops (padding); ``where(small, ones, v)`` is the
    double-where guard: it swaps a safe non-zero constant in for the dangerous rows."""
    branches = [b for b in (tc.positional(0), tc.positional(1)) if b is not None]
    if len(branches) != 2:
        return UNKNOWN
    if any(_is_zero(facts, b, at) for b in branches):
        return PADDING
    if any(facts.is_constant(b, at) for b in branches):
        return SWAPPED
    return _most_likely(trigger_of(facts, branches[0], at, depth), trigger_of(facts, branches[1], at, depth))


def swapped_by_where(facts: "Facts", expr: cst.BaseExpression, at: "At") -> bool:
    """``where(at_boundary, safe_constant, x)`` (or a clamp of one): the double-where guard, which hands
    the op a constant wherever the condition marks its singular point."""
    value, where = facts.resolve(expr, at)
    if not isinstance(value, cst.Call):
        return False
    tc = match_call(value, facts.imports)
    if tc is None:
        return False
    if tc.key in ("clamp", "clip", "clamp_min", "clamp_max") and tc.operand is not None:
        return swapped_by_where(facts, tc.operand, where)
    if tc.key != "where":
        return False
    branches = [b for b in (tc.positional(0), tc.positional(1)) if b is not None]
    return len(branches) == 2 and any(facts.is_constant(b, where) for b in branches)


def _is_zero(facts: "Facts", expr: cst.BaseExpression, at: "At") -> bool:
    if facts.literal(expr, at) == 0:
        return True
    value, _ = facts.resolve(expr, at)
    if isinstance(value, cst.Call):
        tc = match_call(value, facts.imports)
        return tc is not None and tc.key in _ZERO_FACTORIES
    return False


def _passed_through(value: cst.BaseExpression, name: str) -> Optional[cst.BaseExpression]:
    """``x = check(x, ...)`` / ``x, y = _check_input(x, y)``: a plain function (not a module on ``self``)
    that takes the name it rebinds validates or converts it; the value keeps its origin."""
    if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
        return None
    for arg in value.args:
        if isinstance(arg.value, cst.Name) and arg.value.value == name:
            return arg.value
    return None


def nonzero_filter(facts: "Facts", expr: cst.Subscript, at: "At") -> bool:
    """``x[s != 0]`` / ``x[x.sum(1) > 0]`` / ``x[keep]`` with ``keep = e != 0``: only non-zero entries or rows."""
    if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
        return False
    test, _ = facts.resolve(expr.slice[0].slice.value, at)
    return _nonzero_test(facts, test, at)


def _nonzero_test(facts: "Facts", test: cst.BaseExpression, at: "At") -> bool:
    """``s != 0``, ``s > 0``, or a conjunction holding one (``(n > 0) & (n < C)``): true only where a value is
    not 0."""
    if isinstance(test, cst.BinaryOperation) and isinstance(test.operator, cst.BitAnd):
        return _nonzero_test(facts, test.left, at) or _nonzero_test(facts, test.right, at)
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _nonzero_test(facts, test.left, at) or _nonzero_test(facts, test.right, at)
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    target = test.comparisons[0]
    if not isinstance(target.operator, (cst.NotEqual, cst.GreaterThan)):
        return False
    return facts.literal(target.comparator, at) == 0


def _mean_of(facts: "Facts", expr: cst.BaseExpression, of: cst.BaseExpression, at: "At") -> bool:
    """``expr`` is a mean of ``of`` (``x.mean(1, keepdim=True)``, ``torch.mean(x, dim=0)``, or a name for one)."""
    if isinstance(expr, cst.Name):
        value, _ = facts.resolve(expr, at)
        if value is expr:
            return False
        expr = value
    if not isinstance(expr, cst.Call):
        return False
    func = expr.func
    if isinstance(func, cst.Attribute) and func.attr.value in _MEANS:
        operand = func.value
        if isinstance(operand, cst.Name) and operand.value in ("torch", "np", "numpy") and expr.args:
            operand = expr.args[0].value
        return isinstance(operand, cst.Name) and isinstance(of, cst.Name) and operand.value == of.value
    return False


def _is_self_attribute(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value in ("self",)


# provenances whose values stay small in practice: ``exp`` of them does not overflow (a Gaussian sample, a
# learnable log-scale parameter that starts near 0, a constant table)
_SMALL_IN_PRACTICE = (SAMPLE, PARAMETER, FIXED, CONSTANT, MASKED_MODELLING)


def overflow_trigger(facts: "Facts", expr: cst.BaseExpression, at: "At", limit: float, dtype: str,
                     noun: str = "an argument") -> Trigger:
    """The input that makes ``exp(expr)`` overflow: ``expr`` above ``limit`` (88.7 in float32, 11.09 in
    float16), and how plausible that is. A data-dependent value (a logit, a score, a predicted log-scale, a
    function's input) crossing it is a plausible edge case (a diverging head, an unscaled score); module
    state, a Gaussian sample or a constant table is not. ``noun`` names ``expr`` (a log-scale prior wins)."""
    origin = trigger_of(facts, expr, at)
    likelihood = DEGENERATE if origin in _SMALL_IN_PRACTICE else PLAUSIBLE
    scaled = _scaled_log_scale(facts, expr, at)
    if scaled is not None:  # ``exp(0.5 * logvar)`` overflows for a log-variance above 2 * limit
        name, scale = scaled
        return Trigger(f"`{name}` above {limit / scale:.4g} ({dtype})", likelihood)
    return Trigger(f"{noun} above {limit:.4g} ({dtype})", likelihood)


def is_log_scale(name: str) -> bool:
    """``logvar``, ``log_std``, ``log_sigma``...: the name prior of a predicted log-scale."""
    return _prior(name) is LOG_SCALE


def _scaled_log_scale(facts: "Facts", expr: cst.BaseExpression, at: "At") -> Optional[tuple[str, float]]:
    """``logvar`` -> ("logvar", 1), ``0.5 * logvar`` / ``logvar / 2`` -> ("logvar", 0.5): a name with the
    log-scale prior, and the positive literal factor it is scaled by."""
    scale = 1.0
    while isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Divide)):
        right = facts.literal(expr.right, at)
        left = facts.literal(expr.left, at) if isinstance(expr.operator, cst.Multiply) else None
        if right is not None and right > 0:
            scale, expr = (scale * right if isinstance(expr.operator, cst.Multiply) else scale / right), expr.left
        elif left is not None and left > 0:
            scale, expr = scale * left, expr.right
        else:
            return None
    name = expr.value if isinstance(expr, cst.Name) else expr.attr.value if isinstance(expr, cst.Attribute) else ""
    return (name, scale) if name and is_log_scale(name) and not _is_self_attribute(expr) else None


def _allocation(facts: "Facts", value: cst.BaseExpression, at: "At") -> bool:
    """``torch.zeros(n)`` / ``empty`` / ``ones`` / ``full`` / ``*_like``: storage allocated to be filled later."""
    if not isinstance(value, cst.Call):
        return False
    tc = match_call(value, facts.imports)
    return tc is not None and tc.key in _CONSTANT_FACTORIES


def _distance_trigger(facts: "Facts", expr: cst.BaseExpression, at: "At") -> Trigger:
    """An expanded squared distance is 0 on the diagonal of a batch against itself (every batch), else for two
    equal rows."""
    return SELF_PAIR if facts.distance_to_itself(expr, at) else EQUAL


def spread_trigger(operand: Trigger) -> Trigger:
    """What makes a spread (``std``, ``var``, a range ``max - min``) 0: its operand constant, not 0. A difference
    ``returns - values`` is constant without its two sides being equal, so the "two equal inputs" of a zero
    difference becomes a constant difference, as ordinary; the other provenances (padding, a learned projection)
    keep theirs."""
    return CONSTANT_INPUT if operand in (EQUAL, SELF_PAIR, REWARDS) else operand


def count_trigger(kind: str, origin: frozenset, whole_batch: bool) -> Trigger:
    """What makes a count 0 (NAN103): an isolated node for a degree, an empty bin for a ``bincount``, an
    anchor with no positive for a mask of label pairs without its diagonal, all labels ignored for a mask of labels (per row: a prompt-only row is ordinary in SFT; for the whole batch
    only plausible), else an empty selection."""
    if "degree" in kind:
        return ISOLATED
    if "bin count" in kind:
        return EMPTY_BIN
    if kind == "category count":
        return ABSENT_CATEGORY
    if any(INDICATOR_NAME.match(name.rsplit(".", 1)[-1]) for name in origin):
        return NO_EVENT
    if kind == "count of positive pairs":
        return NO_POSITIVE
    if any(_LABELS.search(name.rsplit(".", 1)[-1]) for name in origin):
        return IGNORED_BATCH if whole_batch else IGNORED_ROW
    return EMPTY_SELECTION


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


# -- how a function is called: the provenance of its arguments at the module's call sites ----------------
def parameter_trigger(summary: "ModuleSummary", function: cst.FunctionDef, name: str) -> Optional[Trigger]:
    """The trigger of parameter ``name`` of ``function`` from what the module's callers pass, or None when
    no caller is seen. The most ordinary argument wins: one caller passing data is enough."""
    return _passed_trigger(summary, _passed(summary, function, name) or [], frozenset({function.name.value}))


def _passed_trigger(summary: "ModuleSummary", passed: list[tuple[Optional[ast.AST], Optional[ast.AST], ast.Call]],
                    seen: frozenset[str]) -> Optional[Trigger]:
    found = [_ast_trigger(summary, argument, caller, call.lineno, 0, seen)
             for argument, caller, call in passed if argument is not None]
    if not found:
        return None
    best = found[0]
    for trigger in found[1:]:
        best = _most_likely(best, trigger)
    return best


def _forwarded(summary: "ModuleSummary", caller: ast.AST, name: str, seen: frozenset[str]) -> Trigger:
    """Parameter ``name`` of ``caller``, which passes it on (a wrapper, ``project_fov(X, ...)`` calling
    ``project(X, ...)``): what the wrapper's own callers pass; an input when none is seen."""
    if not isinstance(caller, (ast.FunctionDef, ast.AsyncFunctionDef)) or caller.name in seen \
            or len(seen) > _FORWARDING_DEPTH:
        return INPUT
    params = caller.args
    passed = summary.arguments_passed(caller.name, [a.arg for a in (*params.posonlyargs, *params.args)],
                                      {a.arg for a in params.kwonlyargs}, name)
    found = _passed_trigger(summary, passed or [], seen | {caller.name})
    return found if found is not None else INPUT


_AST_TRANSPARENT = _TRANSPARENT | {"sum", "mean", "abs", "pow", "square", "float", "reshape"}
_FORWARDING_DEPTH = 4  # wrappers followed up the call chain before a parameter counts as an input


def _ast_trigger(summary: "ModuleSummary", node: ast.AST, caller: Optional[ast.AST], line: int, depth: int,
                 seen: frozenset[str]) -> Trigger:
    if depth > 4:
        return UNKNOWN
    if isinstance(node, ast.Name):
        prior = _prior(node.id)
        if prior is not None:
            return prior
        value = last_assignment(caller, node.id, line, unpack=False)
        if value is not None:
            return _ast_trigger(summary, value, caller, getattr(value, "lineno", line), depth + 1, seen)
        if caller is not None and node.id in {a.arg for a in ast.walk(caller.args)  # type: ignore[attr-defined]
                                              if isinstance(a, ast.arg)}:
            return _forwarded(summary, caller, node.id, seen)
        return UNKNOWN
    if isinstance(node, ast.Attribute):
        prior = _prior(node.attr)
        if prior is not None:
            return prior
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return PARAMETER
        return LEARNED  # ``outputs.image_embeds``
    if isinstance(node, ast.Subscript):
        return _ast_trigger(summary, node.value, caller, line, depth + 1, seen)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Sub):
            return EQUAL
        return _least_likely(_ast_trigger(summary, node.left, caller, line, depth + 1, seen),
                             _ast_trigger(summary, node.right, caller, line, depth + 1, seen))
    if isinstance(node, ast.Call):
        func = node.func
        last = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if last in _SAMPLERS:
            return SAMPLE
        if last in _AST_TRANSPARENT and isinstance(func, ast.Attribute):
            return _ast_trigger(summary, func.value, caller, line, depth + 1, seen)
        return LEARNED
    return UNKNOWN


def zero_at_every_call(summary: "ModuleSummary", function: cst.FunctionDef, name: str) -> bool:
    """Every call of ``function`` in the module passes exactly 0 as parameter ``name`` (``0``, ``0.0``,
    ``torch.zeros(...)``, or a name the caller assigned one): the parameter is a constant 0 (a pinhole
    camera's ``xi``), whatever its type says."""
    passed = _passed(summary, function, name)
    if not passed:
        return False
    for argument, caller, call in passed:
        if isinstance(argument, ast.Name):
            argument = last_assignment(caller, argument.id, call.lineno, unpack=False)
        if not _ast_zero(argument):
            return False
    return True


def _passed(summary: "ModuleSummary", function: cst.FunctionDef, name: str
            ) -> Optional[list[tuple[Optional[ast.AST], Optional[ast.AST], ast.Call]]]:
    """:meth:`ModuleSummary.arguments_passed` for a libcst definition."""
    params = [p.name.value for p in (*function.params.posonly_params, *function.params.params)]
    return summary.arguments_passed(function.name.value, params, {p.name.value for p in function.params.kwonly_params},
                                    name)


def _ast_zero(node: Optional[ast.AST]) -> bool:
    if isinstance(node, ast.Constant):
        return not isinstance(node.value, bool) and node.value == 0
    if isinstance(node, ast.Call):
        func = node.func
        last = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return last in _ZERO_FACTORIES
    return False
