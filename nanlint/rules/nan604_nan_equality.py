import math
import re
from typing import Optional

import libcst as cst

from ..facts import At
from ..fixspec import SAFE, FixSpec, Replace
from ..names import builtin_name
from ..patterns import code
from ..singular import plain_code, torch_alias
from ._literal_evidence import nan_evidence
from ._screens import Screen
from .base import Rule, SOMETIMES, Witness

_NAN_NAMES = frozenset({"numpy.NaN", "numpy.NAN", "numpy.nan", "math.nan", "torch.nan"})
# torch functions (op keys) whose result is not a tensor
_NOT_TENSOR = re.compile(
    r"^(?:cuda|backends|distributed|utils|jit|onnx|hub|autograd|testing|fx|compiler|export|_C|version|cpu|mps|"
    r"multiprocessing|profiler|overrides|library|optim|amp|nn(?!\.functional)|random)\.|"
    r"^(?:is_\w+|get_\w+|set_\w+|numel|finfo|iinfo|typename|result_type|promote_types|can_cast|initial_seed|seed|"
    r"manual_seed|device|dtype|Size|no_grad|enable_grad|inference_mode|compile|load|save)$"
)


class NanEquality(Rule):
    """
    ## What it does
    Flags comparisons with NaN by `==` or `!=`: `x == float('nan')`,
    `x != torch.nan`, `x == math.nan`, `x == np.nan`, `torch.eq(x, float('nan'))`,
    `x.ne(math.nan)`, also through a constant (`NAN = float('nan')`).

    ## Why is this bad?
    NaN is not equal to anything, itself included (IEEE 754): `x == nan` is
    always False and `x != nan` always True, for Python floats, NumPy arrays and
    tensors alike (docs/numerics-extra.md "nan equality"). A NaN check written this way
    never fires, so the NaN it was meant to catch flows on: a
    `torch.where(x == float('nan'), 0, x)` cleanup leaves every NaN in place.

    ## Example
    ```python
    if loss == float("nan"):
        raise RuntimeError("NaN loss")
    ```

    ## Use instead
    ```python
    if torch.isnan(loss):          # a tensor
        raise RuntimeError("NaN loss")
    if math.isnan(value):          # a Python float
        ...
    ```

    ## Fix safety
    The fix rewrites `x == nan` to `torch.isnan(x)` (`!=` to `~torch.isnan(x)`)
    when `x` is known to be a tensor (it was produced by a torch function, or
    is a parameter annotated `torch.Tensor`), and to `math.isnan(x)` (`not
    math.isnan(x)`) when it is known to be a Python number (`.item()`,
    `float(...)`, a `math` call) and `math` is imported. It states what the
    comparison evidently meant, and is offered as safe; when the type of `x`
    is unknown there is no fix, because `torch.isnan` rejects floats and
    `math.isnan` rejects tensors.
    """

    code = "NAN604"
    name = "nan-equality"
    summary = "comparison with NaN by == / != (always False / True)"
    rows = "–"
    fix_availability = SOMETIMES
    fix_applicability = (SAFE,)
    # a NaN is named (``nan``, ``float("NaN")``) or made from a named infinity (``inf - inf``,
    # ``float("Infinity")``): facts never fold an overflow of finite literals into one. The word boundary
    # keeps ``info``/``inference`` out (without it, a cold run over the corpus took a third longer).
    screen = Screen(r"[nN][aA][nN]\b|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?\b")
    evidence_at = staticmethod(nan_evidence)  # a -inf passed to masked_fill is compared with nothing
    witnesses = (
        Witness(
            setup="x = leaf(torch.tensor([float('nan'), 1.0], dtype=dtype))",
            hazard="y = torch.where(x == float('nan'), torch.zeros_like(x), x)",
            fixed="y = torch.where(torch.isnan(x), torch.zeros_like(x), x)",
        ),
        Witness(  # `x` visibly a tensor: the form nanlint's fix rewrites
            setup="x = torch.tensor([float('nan'), 1.0], dtype=dtype)",
            hazard="y = torch.where(x != torch.nan, x, torch.zeros_like(x))",
            fixed="y = torch.where(~torch.isnan(x), x, torch.zeros_like(x))",
        ),
    )

    def visit_Comparison(self, node: cst.Comparison) -> None:
        at = self.ctx.at()
        left = node.left
        for target in node.comparisons:
            right = target.comparator
            if isinstance(target.operator, (cst.Equal, cst.NotEqual)):
                for nan, other in ((right, left), (left, right)):
                    if self._is_nan(nan, at) and not self._is_nan(other, at):
                        equal = isinstance(target.operator, cst.Equal)
                        fix = self._fix(node, other, equal, at) if len(node.comparisons) == 1 else None
                        self._report(node, other, nan, equal, fix)
                        return
            left = right

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.key not in ("eq", "ne", "not_equal") or tc.operand is None:
            return
        at = self.ctx.at()
        other = tc.argument("other", 0)
        if other is None or not self._is_nan(other, at):
            return
        equal = tc.key == "eq"
        tensor = not tc.is_method or self._kind(tc.operand, at) == "tensor"
        fix = None
        torch = torch_alias(self.ctx)
        if tensor and torch is not None:
            operand = plain_code(self.ctx, tc.operand)
            fix = FixSpec(SAFE, "Use `torch.isnan`",
                          (Replace(node, f"{'' if equal else '~'}{torch}.isnan({operand})"),))
        self._report(node, tc.operand, other, equal, fix)

    # ------------------------------------------------------------------
    def _report(self, node: cst.CSTNode, other: cst.BaseExpression, nan: cst.BaseExpression, equal: bool,
                fix: Optional[FixSpec]) -> None:
        verdict = "always False" if equal else "always True"
        self.report(
            node,
            f"`{code(self.ctx, node)}` is {verdict}: NaN is not equal to anything, itself included; use "
            f"`{'' if equal else '~'}torch.isnan({code(self.ctx, other, 30)})` for a tensor or "
            f"`{'' if equal else 'not '}math.isnan(...)` for a float",
            fix=fix,
            target=nan,
        )

    def _is_nan(self, expr: cst.BaseExpression, at: At) -> bool:
        if isinstance(expr, cst.Attribute) and self.ctx.imports.qualify(expr) in _NAN_NAMES:
            return True
        value = self.facts.literal(expr, at)
        return value is not None and math.isnan(value)

    def _fix(self, node: cst.Comparison, other: cst.BaseExpression, equal: bool, at: At) -> Optional[FixSpec]:
        kind = self._kind(other, at)
        operand = plain_code(self.ctx, other)
        if kind == "tensor":
            torch = torch_alias(self.ctx)
            if torch is None:
                return None
            return FixSpec(SAFE, "Use `torch.isnan`", (Replace(node, f"{'' if equal else '~'}{torch}.isnan({operand})"),))
        if kind == "number":
            isnan = self._math_isnan()
            if isnan is None:
                return None
            return FixSpec(SAFE, "Use `math.isnan`", (Replace(node, f"{'' if equal else 'not '}{isnan}({operand})"),))
        return None

    def _math_isnan(self) -> Optional[str]:
        for local, full in self.ctx.imports.aliases.items():
            if full == "math":
                return f"{local}.isnan"
            if full == "math.isnan":
                return local
        return None

    def _kind(self, expr: cst.BaseExpression, at: At) -> Optional[str]:
        """``tensor`` / ``number`` when the value's type is evident, else None."""
        for _ in range(8):
            if isinstance(expr, (cst.Integer, cst.Float)):
                return "number"
            if isinstance(expr, cst.Call):
                name = builtin_name(expr, self.ctx.imports)
                if name in ("float", "int", "len", "abs", "round", "sum", "min", "max") and name not in \
                        self.ctx.imports.aliases:
                    return "number" if name in ("float", "int", "len") else None
                qualified = self.ctx.imports.qualify(expr.func) if isinstance(expr.func, (cst.Name, cst.Attribute)) \
                    else None
                if qualified is not None and qualified.startswith("math."):
                    return "number"
                if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("item", "tolist") \
                        and not expr.args:
                    return "number" if expr.func.attr.value == "item" else None
                tc = self.ctx.match(expr)
                if tc is not None and not tc.is_method and not _NOT_TENSOR.search(tc.key):
                    return "tensor"
                return None
            if isinstance(expr, cst.Name):
                binding = self.facts.binding(expr, at)
                if binding is None:
                    return None
                if binding.is_parameter:  # its annotation, not its default, says what callers pass
                    return self._annotation(binding.scope.node, expr.value)
                value, where = self.facts.resolve(expr, at)
                if value is expr:
                    return None
                expr, at = value, where
                continue
            return None
        return None

    def _annotation(self, function: cst.CSTNode, name: str) -> Optional[str]:
        """``x: torch.Tensor`` / ``x: float`` as a parameter of ``function``."""
        if not isinstance(function, cst.FunctionDef):
            return None
        params = function.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if param.name.value != name or param.annotation is None:
                continue
            annotation = param.annotation.annotation
            qualified = self.ctx.imports.qualify(annotation) if isinstance(annotation, (cst.Name, cst.Attribute)) \
                else None
            if qualified == "torch.Tensor" or (isinstance(annotation, cst.Name) and annotation.value == "Tensor"
                                               and qualified is not None and qualified.startswith("torch")):
                return "tensor"
            if isinstance(annotation, cst.Name) and annotation.value == "float" and "float" not in \
                    self.ctx.imports.aliases:
                return "number"
        return None
