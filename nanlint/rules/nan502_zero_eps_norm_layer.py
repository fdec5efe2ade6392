import re
from typing import Optional

import libcst as cst

from ..fixspec import UNSAFE, FixSpec, Replace
from ..patterns import code
from .base import Rule, SOMETIMES, Witness

# op key -> (positional index of eps after the operand, default eps as code)
_NORMS: dict[str, tuple[int, str]] = {
    "nn.LayerNorm": (0, "1e-05"),
    "nn.GroupNorm": (1, "1e-05"),
    "nn.RMSNorm": (0, "None"),
    "F.layer_norm": (3, "1e-05"),
    "layer_norm": (3, "1e-05"),
    "F.group_norm": (3, "1e-05"),
    "group_norm": (3, "1e-05"),
    "F.rms_norm": (2, "None"),
    "rms_norm": (2, "None"),
}


class ZeroEpsNormLayer(Rule):
    """
    ## What it does
    Flags `nn.LayerNorm`, `nn.GroupNorm`, `nn.RMSNorm`, `F.layer_norm`,
    `F.group_norm` and `F.rms_norm` (and their `torch.` forms) called with
    `eps=0`, by keyword or position, also when the 0 comes from a constant or
    a default argument (`def __init__(self, dim, eps=0.0): ... nn.LayerNorm(dim, eps=eps)`).
    Batch norm and instance norm are not flagged: PyTorch rejects
    `batch_norm(eps=0)` in training and guards `instance_norm` (rows 43, 44).

    ## Why is this bad?
    These layers divide by `sqrt(var + eps)` (RMS norm: `sqrt(mean(x**2) + eps)`).
    A constant input row (LayerNorm, GroupNorm) or an all-zero row (RMSNorm: a
    padding position, a dead channel) has variance exactly 0, and with eps=0
    the output and the gradient are NaN, in float32, bfloat16 and float16
    (docs/probe.md row 42; docs/numerics-extra.md "zero-eps norm modules" for
    the `nn` modules).

    ## Example
    ```python
    self.norm = nn.LayerNorm(dim, eps=0)
    ```

    ## Use instead
    ```python
    self.norm = nn.LayerNorm(dim)  # eps=1e-5
    ```

    ## Fix safety
    The fix writes the layer's default eps (1e-5; `None`, meaning
    `torch.finfo(x.dtype).eps`, for RMS norm) in place of the literal 0. It
    changes every output slightly, so it is unsafe. It is offered only when the
    0 is written in the call itself.
    """

    code = "NAN502"
    name = "zero-eps-norm-layer"
    summary = "layer/group/RMS norm with eps=0: NaN on a constant or zero input"
    rows = "42, 43, 44"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # A call of torch's own norm (the name not glued to a longer one: ``LlamaRMSNorm(...)`` is not torch's)
    # that passes more than one simple argument (eps is a keyword or the 2nd+ positional), or an import
    # alias of one; ``nn.LayerNorm(dim)`` cannot hold a finding. Literal-first ("norm", then what precedes
    # it): 5x faster than a leading case-insensitive group.
    screen = re.compile(r"""[nN][oO][rR][mM]
        (?:""" + "|".join(rf"(?<=(?i:{name}))(?<!\w(?i:{name}))" for name in
                          ("layernorm", "layer_norm", "groupnorm", "group_norm", "rmsnorm", "rms_norm")) + r""")
        (?:\w*\s+as\b | [\s\\]*\((?![^(),\#"'eE]*(?:[eE](?![pP][sS])[^(),\#"'eE]*)*\)))""", re.VERBOSE)
    attribute_flow = False  # reports at the norm call its screen matches
    witnesses = (
        Witness(
            setup="x = leaf(torch.ones(2, 8, dtype=dtype))",
            hazard="y = F.layer_norm(x, (8,), eps=0)",
            fixed="y = F.layer_norm(x, (8,))",
        ),
        Witness(
            setup="x = leaf(torch.ones(2, 8, 3, dtype=dtype))",
            hazard="norm = torch.nn.GroupNorm(2, 8, eps=0.0).to(dtype); y = norm(x)",
            fixed="norm = torch.nn.GroupNorm(2, 8).to(dtype); y = norm(x)",
        ),
        Witness(
            setup="x = leaf(torch.zeros(2, 8, dtype=dtype))",
            hazard="norm = torch.nn.RMSNorm(8, eps=0).to(dtype); y = norm(x)",
            fixed="norm = torch.nn.RMSNorm(8).to(dtype); y = norm(x)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.is_method:
            return
        spec = _NORMS.get(tc.key)
        if spec is None:
            return
        index, default = spec
        eps = tc.argument("eps", index)
        if eps is None:
            return
        value = self.facts.literal(eps, self.ctx.at())
        if value is None or value != 0:
            return
        layer = tc.key if "." in tc.key else f"torch.{tc.key}"
        fix: Optional[FixSpec] = None
        if isinstance(eps, (cst.Integer, cst.Float)):
            fix = FixSpec(UNSAFE, f"Use the default eps ({default})", (Replace(eps, default),))
        spelled = code(self.ctx, eps)
        origin = "" if isinstance(eps, (cst.Integer, cst.Float)) else f" (`{spelled}` is 0)"
        self.report(
            node,
            f"`{layer}` with eps=0{origin}: a constant (or, for RMS norm, all-zero) input row has variance 0 and "
            f"the output and gradient are NaN; keep the default eps ({'finfo.eps' if default == 'None' else default})",
            fix=fix,
            target=eps,
        )
