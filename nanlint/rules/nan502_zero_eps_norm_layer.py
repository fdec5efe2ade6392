import re
from functools import partial
from typing import Optional

import libcst as cst

from ..fixspec import UNSAFE, FixSpec, Replace
from ..patterns import code
from ._literal_evidence import zero_eps_evidence
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
    a default argument (`def __init__(self, dim, eps=0.0): ... nn.LayerNorm(dim, eps=eps)`),
    or a config the same module writes as a literal: a dict (`cfg = {"eps": 0.0}` ...
    `eps=cfg["eps"]`, or `**norm_kwargs` with `norm_kwargs = dict(eps=0)`), a config
    object built with the keyword (`config = Config(layer_norm_eps=0)`) or a dataclass
    whose field defaults to 0 (`config = Config()` ... `eps=config.layer_norm_eps`).
    A config the module writes to later (`cfg["eps"] = 1e-5`), or one it does not
    build (a parameter `config`), is not followed.
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
    # a call whose eps never folds to 0 holds no finding (eps's position: after the operand, the first argument)
    evidence_at = staticmethod(partial(zero_eps_evidence, positions={
        key.rpartition(".")[2]: index + 1 for key, (index, _) in _NORMS.items()}))
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
        Witness(  # eps from a config dict holding 0
            setup="x = leaf(torch.ones(2, 8, dtype=dtype)); cfg = {'eps': 0.0}",
            hazard="norm = torch.nn.LayerNorm(8, eps=cfg['eps']).to(dtype); y = norm(x)",
            fixed="norm = torch.nn.LayerNorm(8).to(dtype); y = norm(x)",
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
        at = self.ctx.at()
        eps = tc.argument("eps", index)
        where, passed, target = at, "", eps
        if eps is None:  # ``nn.LayerNorm(d, **norm_kwargs)`` with ``norm_kwargs = {"eps": 0.0}``
            for arg in node.args:
                entry = self.facts.entry(arg.value, "eps", at) if arg.star == "**" else None
                if entry is not None:
                    (eps, where), passed = entry, f" (`**{code(self.ctx, arg.value)}` holds eps=0)"
                    target = arg.value  # the finding points into the call, not at the dict elsewhere
                    break
            else:
                return
        value = self.facts.literal(eps, where)
        if value is None or value != 0:
            return
        layer = tc.key if "." in tc.key else f"torch.{tc.key}"
        fix: Optional[FixSpec] = None
        if isinstance(eps, (cst.Integer, cst.Float)) and any(arg.value is eps for arg in node.args):
            fix = FixSpec(UNSAFE, f"Use the default eps ({default})", (Replace(eps, default),))
        spelled = code(self.ctx, eps)
        origin = passed or ("" if isinstance(eps, (cst.Integer, cst.Float)) else f" (`{spelled}` is 0)")
        self.report(
            node,
            f"`{layer}` with eps=0{origin}: a constant (or, for RMS norm, all-zero) input row has variance 0 and "
            f"the output and gradient are NaN; keep the default eps ({'finfo.eps' if default == 'None' else default})",
            fix=fix,
            target=target,
        )
