import re
from typing import Optional

import libcst as cst

from ..eps import dtype_ref
from ..facts import NORM_OPS, At
from ..fixspec import UNSAFE, FixSpec, Replace, append_to
from ..patterns import code, division
from ..precision import SHORT, half_precisions, rounds_to_unit
from ..analysis.gradient import gradient_at
from ..analysis.ops import COSINE_KEEPING as _SHAPE_OPS, PRODUCTS as _PRODUCTS, UNIT_CLAMPS as _CLAMPS
from ..analysis.ops import VALUE_KEEPING as _SHAPE_ONLY
from ..analysis.triggers import swapped_by_where
from ._guards import Built, eps_receiver
from ._screens import AS_FOREIGN, Screen, not_foreign
from .base import SOMETIMES, Rule, Witness

_ACOS = {"acos": "acos", "arccos": "acos", "acos_": "acos", "asin": "asin", "arcsin": "asin", "asin_": "asin"}


_CONVERTER = re.compile(r"^_?(to|as)_?tensor|^_?to_tensor")


class AcosOfCosine(Rule):
    """
    ## What it does
    Flags `acos`/`asin` (`torch.acos`, `x.acos()`, `torch.arccos`, ...) of a
    cosine with no clamp: `F.cosine_similarity(a, b)`, an `nn.CosineSimilarity`
    module, the dot product of normalized vectors (`(F.normalize(a) * F.normalize(b)).sum(-1)`,
    `a_n @ b_n.T`, `F.linear(F.normalize(x), F.normalize(w))`, `torch.einsum`),
    or `dot / (a.norm() * b.norm())`, followed through variables. Also flags a
    clamp that does not keep the argument off +-1: `clamp(-1, 1)`, or a bound
    such as `1 - 1e-7` that rounds to exactly 1 in a half precision the file can
    run in (bfloat16 by default, float16 on evidence; `precision` in the config
    decides when set), whatever is clamped.

    ## Why is this bad?
    The derivative of `acos` at +-1 is infinite. The cosine of a vector with
    itself (or a parallel one) is exactly 1 in float32 for many inputs, and
    float16/bfloat16 rounding pushes it past 1 (`F.cosine_similarity` returns
    1.001 in float16 and 1.0078 in bfloat16): the gradient is NaN, and past 1
    the forward too (docs/probe.md row 33). Clamping to exactly [-1, 1] does not
    help: `acos(1)` still has a -inf derivative, and `1 - 1e-7` is 1 in
    float16 and bfloat16 (rows 20, 33; docs/numerics-extra.md "acos clamp"
    measures `1 - 1e-3` rounding to 1 in bfloat16).

    ## Example
    ```python
    angle = torch.acos(F.cosine_similarity(a, b, dim=-1))
    ```

    ## Use instead
    ```python
    cos = F.cosine_similarity(a, b, dim=-1)
    eps = torch.finfo(cos.dtype).eps
    angle = torch.acos(cos.clamp(-1 + eps, 1 - eps))
    ```
    `torch.finfo(dtype).eps` is one unit below 1 in every dtype (row 33), or
    use `torch.atan2(sin, cos)`, which is finite everywhere (row 13).

    ## Fix safety
    The fix clamps one unit of the dtype inside +-1: an unclamped cosine gets
    `.clamp(-1 + eps, 1 - eps)`, and a two-sided clamp with literal bounds
    (`clamp(-1, 1)`, `clamp(c, -1 + 1e-7, 1 - 1e-7)`) gets those bounds, with
    `eps = torch.finfo(c.dtype).eps` read from the cosine (only when the value
    analysis shows it is a floating tensor, see `--show-fixes` otherwise). It is
    unsafe: angles within about sqrt(2 eps) of 0 and pi change.
    """

    code = "NAN404"
    name = "acos-of-cosine"
    summary = "acos/asin of a cosine that can be exactly +-1 (no clamp, or a clamp that rounds to 1)"
    rows = "33"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # whole words, literal-first (``asin`` is in "increasing" and "aliasing"); ``math.acos`` is not torch's
    screen = Screen("|".join(rf"{op}(?<!\w{op})" + not_foreign(op) + r"_?(?!\w)" for op in ("acos", "arccos", "asin",
                                                                                         "arcsin")) + "|" + AS_FOREIGN)
    witnesses = (
        Witness(
            setup="a = leaf(torch.tensor([[3.0, 4.0, 0.0, 0.0]], dtype=dtype)); "
                  "b = torch.tensor([[3.0, 4.0, 0.0, 0.0]], dtype=dtype)",
            hazard="y = torch.acos(F.cosine_similarity(a, b, dim=-1))",
            fixed="cos = F.cosine_similarity(a, b, dim=-1); eps = torch.finfo(cos.dtype).eps; "
                  "y = torch.acos(cos.clamp(-1 + eps, 1 - eps))",
        ),
        Witness(
            setup="half = torch.bfloat16; a = leaf(torch.tensor([[3.0, 4.0, 0.0, 0.0]], dtype=dtype)); "
                  "b = torch.tensor([[3.0, 4.0, 0.0, 0.0]], dtype=dtype)",
            hazard="cos = F.cosine_similarity(a, b, dim=-1); y = torch.acos(torch.clamp(cos, -1 + 1e-7, 1 - 1e-7))",
            fixed="cos = F.cosine_similarity(a, b, dim=-1); eps = torch.finfo(cos.dtype).eps; "
                  "y = torch.acos(torch.clamp(cos, -1 + eps, 1 - eps))",
            hazard_dtypes=("bfloat16", "float16"),
        ),
        Witness(
            setup="a = leaf(torch.tensor([[3.0, 4.0, 0.0, 0.0]], dtype=dtype)); "
                  "b = torch.tensor([[3.0, 4.0, 0.0, 0.0]], dtype=dtype)",
            hazard="a_n = F.normalize(a, dim=-1); b_n = F.normalize(b, dim=-1); y = (a_n * b_n).sum(-1).asin()",
            fixed="a_n = F.normalize(a, dim=-1); b_n = F.normalize(b, dim=-1); c = (a_n * b_n).sum(-1); "
                  "eps = torch.finfo(c.dtype).eps; y = c.clamp(-1 + eps, 1 - eps).asin()",
        ),
        Witness(  # the fix of `clamp(-1, 1)`, at both triggers: parallel (+1) and antiparallel (-1) vectors
            setup="a = leaf(torch.tensor([[3.0, 4.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0]], dtype=dtype)); "
                  "b = torch.tensor([[3.0, 4.0, 0.0, 0.0], [-3.0, -4.0, 0.0, 0.0]], dtype=dtype)",
            hazard="cos = F.cosine_similarity(a, b, dim=-1); y = torch.acos(cos.clamp(-1, 1))",
            fixed="cos = F.cosine_similarity(a, b, dim=-1); "
                  "y = torch.acos(cos.clamp(-1 + torch.finfo(cos.dtype).eps, 1 - torch.finfo(cos.dtype).eps))",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.key not in _ACOS or tc.operand is None:
            return
        if self.silenced(tc.operand) or swapped_by_where(self.facts, tc.operand, self.ctx.at()):
            return  # not a tensor, or the double-where guard hands it a constant at +-1
        if self._clamp(self._unwrap(tc.operand, self.ctx.at())[0]) is not None \
                and not gradient_at(self.ctx, (tc.operand,)).flows:
            return  # a clamp keeps the forward finite; only the gradient at +-1 is infinite, and none flows here
        op = _ACOS[tc.key]
        expr, at = self._unwrap(tc.operand, self.ctx.at())
        clamp = self._clamp(expr)
        if clamp is not None:
            self._check_clamp(node, op, clamp, at)
            return
        if self._is_cosine(expr, at, 0):
            self.report(
                node,
                f"`{op}` of `{code(self.ctx, tc.operand)}`, a cosine that is exactly 1 for parallel vectors and "
                f"can round past +-1: {op}'s derivative there is infinite (NaN gradient, NaN forward past 1); "
                "clamp it first: `c.clamp(-1 + eps, 1 - eps)` with `eps = torch.finfo(c.dtype).eps`",
                target=tc.operand,
                **self._wrap_fix(tc.operand).extra(),
            )

    # -- fixes ------------------------------------------------------------
    def _margin(self, clamped: cst.BaseExpression) -> "tuple[Optional[str], tuple, Built]":
        """``torch.finfo(<clamped>.dtype).eps`` read from a floating tensor, the changes it needs, or why not."""
        eps, changes, reason, receiver = eps_receiver(self.ctx, "divide", dtype_ref(clamped, self.ctx.imports),
                                                      clamped, self.ctx.at())
        if eps is None or receiver is None:
            return None, (), Built(reason=reason or "the configured `fix-eps` is not a margin below 1")
        return eps, changes, Built(receiver=receiver)

    def _wrap_fix(self, operand: cst.BaseExpression) -> Built:
        """``acos(c)`` -> ``acos(c.clamp(-1 + eps, 1 - eps))``, eps one unit below 1 in ``c``'s dtype."""
        if self.ctx.options.get("fix-eps") is not None:
            return Built(reason="the margin must be `torch.finfo(c.dtype).eps` (one unit below 1), not `fix-eps`")
        eps, changes, built = self._margin(operand)
        if eps is None:
            return built
        return Built(FixSpec(UNSAFE, f"Clamp the cosine one unit inside +-1: `.clamp(-1 + {eps}, 1 - {eps})`",
                             append_to(operand, f".clamp(-1 + {eps}, 1 - {eps})") + changes), receiver=built.receiver)

    def _bounds_fix(self, tc, low: Optional[cst.BaseExpression], high: Optional[cst.BaseExpression],
                    at: At) -> Built:
        """``clamp(c, -1, 1)`` / ``clamp(c, -1 + 1e-7, 1 - 1e-7)`` -> the bounds ``-+(1 - eps)`` of ``c``'s dtype."""
        if self.ctx.options.get("fix-eps") is not None:
            return Built(reason="the margin must be `torch.finfo(c.dtype).eps` (one unit below 1), not `fix-eps`")
        if tc.key not in ("clamp", "clip") or low is None or high is None:
            return Built(reason="only a two-sided `clamp(min, max)` gets its bounds replaced")
        clamped = tc.operand
        if clamped is None:
            return Built(reason="the clamped value cannot be named")
        values = [self.facts.literal(b, at) for b in (low, high)]
        if values[0] is None or values[1] is None or not (values[0] < 0 < values[1]):
            return Built(reason="the bounds are not literals around 0")
        eps, changes, built = self._margin(clamped)
        if eps is None:
            return built
        return Built(FixSpec(UNSAFE, f"Clamp one unit inside +-1: `-1 + {eps}`, `1 - {eps}`",
                             (Replace(low, f"-1 + {eps}"), Replace(high, f"1 - {eps}")) + changes),
                     receiver=built.receiver)

    # -- clamps -----------------------------------------------------------
    def _clamp(self, expr: cst.BaseExpression):
        if not isinstance(expr, cst.Call):
            return None
        tc = self.ctx.match(expr)
        if tc is None or tc.key not in _CLAMPS:
            return None
        if tc.key in ("clamp_max", "clamp_max_"):
            return tc, None, tc.argument("max", 0)
        if tc.key in ("clamp_min", "clamp_min_"):
            return tc, tc.argument("min", 0), None
        if tc.key in ("hardtanh", "F.hardtanh"):
            low, high = tc.argument("min_val", 0), tc.argument("max_val", 1)
            return tc, low, high
        return tc, tc.argument("min", 0), tc.argument("max", 1)

    def _check_clamp(self, node: cst.Call, op: str, clamp, at: At) -> None:
        tc, low, high = clamp
        if self._zero_numerator(tc.operand, at):
            return
        exact: list[str] = []
        rounding: dict[tuple[str, ...], list[str]] = {}
        reasons: dict[str, str] = {}
        for dtype, why in half_precisions(self.ctx):
            reasons[dtype] = (f"{SHORT[dtype]} ({why.describe()})" if why is not None
                              else f"{SHORT[dtype]} (assumed possible unless `precision` is configured)")
        for bound in (low, high):
            value = self.facts.literal(bound, at) if bound is not None else None
            if value is None:
                continue
            if abs(value) >= 1:
                exact.append(f"`{code(self.ctx, bound)}`")
                continue
            dtypes = tuple(d for d in reasons if rounds_to_unit(value, d))
            if dtypes:
                rounding.setdefault(dtypes, []).append(f"`{code(self.ctx, bound)}`")
        problems = []
        if exact:
            problems.append(f"{' and '.join(exact)} {'reach' if len(exact) > 1 else 'reaches'} +-1")
        for dtypes, bounds in rounding.items():
            verb = "round" if len(bounds) > 1 else "rounds"
            problems.append(f"{' and '.join(bounds)} {verb} to +-1 in " + ", ".join(reasons[d] for d in dtypes))
        if not problems:
            return
        # the clamp keeps the forward finite: only the gradient at +-1 is infinite, so it matters where
        # training differentiates this code (nanlint.analysis.gradient.evidence)
        evident = gradient_at(self.ctx, (tc.operand,) if tc.operand is not None else ()).evidence
        self.report(
            node,
            f"`{op}` of a clamp that does not keep its argument off +-1: " + "; ".join(problems)
            + f", where {op}'s derivative is infinite (NaN gradient); use `eps = torch.finfo(c.dtype).eps` and "
              "`c.clamp(-1 + eps, 1 - eps)`",
            target=tc.node,
            confidence="high" if evident else "low",
            **self._bounds_fix(tc, low, high, at).extra(),
        )

    def _zero_numerator(self, operand: Optional[cst.BaseExpression], at: At) -> bool:
        """``(xi / denom).clamp(-1, 1)`` where every caller passes ``xi = torch.zeros(...)``: the clamped value
        is 0, far from the bounds."""
        from ..analysis.triggers import zero_at_every_call

        while isinstance(operand, cst.BinaryOperation) and isinstance(operand.operator, (cst.Divide, cst.Multiply)):
            operand = operand.left
        function = self.ctx.enclosing_def()
        for _ in range(4):  # ``xi = xi.expand(B)``: through reshapes to the parameter
            if not isinstance(operand, cst.Name) or function is None:
                return False
            binding = self.facts.binding(operand, at)
            if binding is None:
                return False
            if binding.is_parameter:
                return zero_at_every_call(self.ctx.summary, function, operand.value)
            value = binding.value
            while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                    and value.func.attr.value in _SHAPE_ONLY:
                value = value.func.value
            if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) \
                    and _CONVERTER.match(value.func.value) and len(value.args) == 1:
                value = value.args[0].value  # ``to_tensor_1d(xi)``: a conversion keeps 0
            if not isinstance(value, cst.Name):
                return False
            operand, at = value, At(binding.scope, binding.order)
        return False

    # -- cosines ----------------------------------------------------------
    def _unwrap(self, expr: cst.BaseExpression, at: At) -> tuple[cst.BaseExpression, At]:
        """Follow names and shape/cast ops: ``cos.squeeze(-1)`` -> what ``cos`` was assigned."""
        for _ in range(10):
            value, where = self.facts.resolve(expr, at)
            if value is not expr:
                expr, at = value, where
                continue
            if isinstance(expr, cst.Call):
                tc = self.ctx.match(expr)
                if tc is not None and tc.is_method and tc.key in _SHAPE_OPS and tc.operand is not None:
                    expr = tc.operand
                    continue
            if isinstance(expr, cst.Attribute) and expr.attr.value in ("T", "mT"):
                expr = expr.value
                continue
            break
        return expr, at

    def _is_cosine(self, expr: cst.BaseExpression, at: At, depth: int) -> bool:
        if depth > 4:
            return False
        expr, at = self._unwrap(expr, at)
        if isinstance(expr, cst.Call):
            if self._is_cosine_module(expr, at):
                return True
            tc = self.ctx.match(expr)
            if tc is None:
                return False
            if tc.key in ("F.cosine_similarity", "cosine_similarity"):
                return True
            if tc.key in ("sum",) and tc.operand is not None:
                return self._product_of_normalized(tc.operand, at)
            if tc.key in _PRODUCTS:
                tensors = [a.value for a in expr.args if a.keyword is None and not a.star]
                if tc.key == "einsum":
                    tensors = tensors[1:]
                elif tc.is_method and tc.operand is not None:
                    tensors = [tc.operand] + tensors
                return len(tensors) == 2 and all(self._is_normalized(t, at) for t in tensors)
            return False
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, cst.MatrixMultiply):
                return self._is_normalized(expr.left, at) and self._is_normalized(expr.right, at)
            if isinstance(expr.operator, cst.Divide):
                return self._is_norm_product(expr.right, at)
        return False

    def _is_cosine_module(self, call: cst.Call, at: At) -> bool:
        if not isinstance(call.func, (cst.Name, cst.Attribute)) or self.ctx.imports.is_module(call.func):
            return False
        value, _ = self.facts.resolve(call.func, at)
        if value is call.func or not isinstance(value, cst.Call):
            return False
        tc = self.ctx.match(value)
        return tc is not None and tc.key == "nn.CosineSimilarity"

    def _product_of_normalized(self, expr: cst.BaseExpression, at: At) -> bool:
        expr, at = self._unwrap(expr, at)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            return self._is_normalized(expr.left, at) and self._is_normalized(expr.right, at)
        if isinstance(expr, cst.Call):
            tc = self.ctx.match(expr)
            if tc is not None and tc.key == "mul" and tc.operand is not None and tc.positional(0) is not None:
                return self._is_normalized(tc.operand, at) and self._is_normalized(tc.positional(0), at)
        return False

    def _is_normalized(self, expr: cst.BaseExpression, at: At) -> bool:
        expr, at = self._unwrap(expr, at)
        if isinstance(expr, cst.Call):
            tc = self.ctx.match(expr)
            if tc is not None and tc.key == "F.normalize":
                return True
        found = division(expr, self.ctx)
        return found is not None and self._is_norm(found.divisor, at)

    def _is_norm(self, expr: cst.BaseExpression, at: At) -> bool:
        """A norm, possibly guarded: ``x.norm(dim=-1, keepdim=True)``, ``... .clamp_min(eps)``, ``... + eps``."""
        for _ in range(6):
            expr, at = self._unwrap(expr, at)
            if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
                if self.facts.literal(expr.right, at) is not None:
                    expr = expr.left
                    continue
                if self.facts.literal(expr.left, at) is not None:
                    expr = expr.right
                    continue
                return False
            if isinstance(expr, cst.Call):
                tc = self.ctx.match(expr)
                if tc is None:
                    return False
                if tc.key in NORM_OPS:
                    return True
                if tc.key in ("clamp", "clamp_min", "clip", "add") and tc.operand is not None:
                    expr = tc.operand
                    continue
            return False
        return False

    def _is_norm_product(self, expr: cst.BaseExpression, at: At) -> bool:
        expr, at = self._unwrap(expr, at)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            if self.facts.literal(expr.right, at) is not None:
                return self._is_norm_product(expr.left, at)
        if isinstance(expr, cst.Call):
            tc = self.ctx.match(expr)
            if tc is not None and tc.key in ("clamp", "clamp_min", "clip") and tc.operand is not None:
                return self._is_norm_product(tc.operand, at)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            return self._is_norm(expr.left, at) and self._is_norm(expr.right, at)
        return False
