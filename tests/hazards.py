"""Hypothesis strategies for the property tests and ``benchmarks/reliability.py``.

``hypothesmith`` writes syntactically odd but valid programs that almost never
mention torch, so on their own they exercise the parser and the screens but not
the rules or the fixes. :func:`spliced_programs` takes such a program and
splices torch hazards into it: expressions replace random expressions of the
program (``x / x.norm()``, ``torch.sqrt(v)`` ...), statements are inserted into
random blocks (``loss.backward(); opt.step()`` ...), and sometimes a small
function full of hazards is inserted, so the rules and their fixes run inside
odd syntax (decorators, lambdas, walrus, ``async``, ``match``, comprehensions,
tabs, backslash continuations ...). Every program drawn compiles.

:func:`check_program` is the shared oracle: lint with every rule (preview
included) and ``fix_source(..., unsafe=True)``; it returns a list of problems
(empty when all is well).
"""
from __future__ import annotations

import ast
import warnings
from typing import Optional

import hypothesmith
import libcst as cst
from hypothesis import strategies as st

from nanlint.engine import FILE_ERROR_CODE, INTERNAL_ERROR_CODE, LintRequest, lint_source
from nanlint.fixes import fix_source
from nanlint.rules import ALL_RULES

REQUEST = LintRequest(ALL_RULES, None, (("max-grad-norm", 1.0),))  # every rule, preview ones included
REQUEST_FP16 = LintRequest(ALL_RULES, ("float32", "float16"), (("max-grad-norm", 1.0), ("fix-eps", 1e-4)))

# {T} is the local name of torch, {F} of torch.nn.functional
EXPRESSIONS = (
    "x / x.norm()",
    "x / x.norm(dim=-1, keepdim=True)",
    "x / {T}.linalg.norm(x)",
    "(x - x.mean()) / x.std()",
    "x.sum() / mask.sum()",
    "loss[labels != -100].mean()",
    "{T}.sqrt(v)",
    "{T}.sqrt(((p - t) ** 2).sum())",
    "((p - t) ** 2).sqrt()",
    "{T}.rsqrt(v.var())",
    "v ** 0.5",
    "x.abs() ** 0.5",
    "x.std(dim=1)",
    "{T}.log({T}.softmax(z, -1))",
    "{F}.softmax(z, dim=-1).log()",
    "{T}.log(p)",
    "{T}.exp(s) / {T}.exp(s).sum(-1, keepdim=True)",
    "{T}.exp(z)",
    "{T}.where(sq > 0, {T}.sqrt(sq), 0.0)",
    "m.masked_fill(mask, float('-inf'))",
    "m.masked_fill(~mask, -1e9)",
    "{T}.acos({F}.cosine_similarity(a, b))",
    "{T}.nn.LayerNorm(8, eps=0)",
    "{T}.log(p + 1e-9)",
    "loss == float('nan')",
    "-x / x.norm()",
    "x / -x.norm()",
    "x / x.norm() ** 2",
    "{T}.sqrt(v) ** 2",
    "x / (a + b).norm()",
    "y / x.norm(p=2)[0]",
    "{T}.sqrt(v)[::2]",
    "lambda q: q / q.norm()",
    "[q / q.norm() for q in qs]",
    "(n := x.norm()) and x / n",
    "x / x.norm() if c else {T}.sqrt(v)",
    "f'{x / x.norm()}'",
)

STATEMENTS = (
    "loss.backward(); opt.step()",
    "loss.backward()\nopt.step()",
    "opt = {T}.optim.SGD(model.parameters(), lr=0.1)",
    "opt = {T}.optim.AdamW(model.parameters())\nloss = model(x).sum()\nloss.backward()\nopt.step()\nopt.zero_grad()",
    "scaler.scale(loss).backward()\n{T}.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
    "scaler.step(opt)\nscaler.update()",
    "y = x / x.norm()",
    "y = {T}.sqrt(v)  # noqa: NAN201",
    "y = {T}.sqrt(v)  # nanlint: ignore[NAN101]",
    "del x",
    "assert x.norm() > 0\ny = x / x.norm()",
    "if x.norm() > 0: y = x / x.norm()",
    "v = v.clamp_min(0)\ny = {T}.sqrt(v)",
)

FUNCTION = '''\
def _hazards(model, loader, x, v, p, t, z, m, mask, scaler):
    opt = {T}.optim.AdamW(model.parameters(), lr=1e-3)
    for batch in loader:
        loss = model(batch).sum() + (x / x.norm()).sum() + {T}.sqrt(v).sum() + {T}.log({T}.softmax(z, -1)).sum()
        loss = loss + {T}.sqrt(((p - t) ** 2).sum()) + x.std() + m.masked_fill(mask, float("-inf")).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
    return loss
'''

IMPORTS = (
    ("import torch\nimport torch.nn.functional as F\n", "torch", "F"),
    ("import torch as th\nfrom torch.nn import functional as fn\n", "th", "fn"),
    ("import torch\n", "torch", "torch.nn.functional"),
    ("", "torch", "F"),  # no import: rules must stay quiet or add `import torch` themselves
)


def _compiles(source: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(source, "<generated>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


_GENERATED: Optional[st.SearchStrategy[str]] = None


def generated_programs() -> st.SearchStrategy[str]:
    """hypothesmith's programs: from the grammar and from libcst's node types.

    Built once: ``from_grammar()`` compiles a LALR parser for the whole Python grammar (~2 s).
    """
    global _GENERATED
    if _GENERATED is None:
        _GENERATED = st.one_of(hypothesmith.from_grammar(), hypothesmith.from_node())
    return _GENERATED


class _Collect(cst.CSTVisitor):
    """Expressions that may be replaced, and statement lists statements may be inserted into."""

    def __init__(self) -> None:
        self.expressions: list[cst.BaseExpression] = []
        self.blocks: list[cst.CSTNode] = []  # Module or IndentedBlock

    def visit_Module(self, node: cst.Module) -> None:
        self.blocks.append(node)

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.blocks.append(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Name, cst.Integer, cst.Float, cst.SimpleString, cst.Call, cst.Attribute,
                             cst.BinaryOperation, cst.Subscript, cst.Tuple, cst.List)):
            self.expressions.append(node)
        return super().on_visit(node)


class _Splice(cst.CSTTransformer):
    def __init__(self, replace: dict[cst.CSTNode, cst.BaseExpression],
                 insert: dict[cst.CSTNode, list[tuple[int, list[cst.BaseStatement]]]]) -> None:
        self.replace = replace
        self.insert = insert

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):  # type: ignore[override]
        if original in self.replace:
            return self.replace[original]
        if original in self.insert and isinstance(updated, (cst.Module, cst.IndentedBlock)):
            body = list(updated.body)
            for index, statements in sorted(self.insert[original], key=lambda item: -item[0]):
                position = min(index, len(body))
                if isinstance(updated, cst.Module):
                    position = max(position, _after_future_imports(body))
                body[position:position] = statements
            return updated.with_changes(body=body)
        return updated


def _after_future_imports(body: list[cst.BaseStatement]) -> int:
    position = 0
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.SimpleStatementLine):
            break
        small = statement.body[0] if statement.body else None
        if isinstance(small, cst.ImportFrom) and isinstance(small.module, cst.Name) \
                and small.module.value == "__future__":
            position = index + 1
        elif isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)) \
                and index == 0:
            position = 1
        else:
            break
    return position


def _statements(code: str) -> list[cst.BaseStatement]:
    return list(cst.parse_module(code if code.endswith("\n") else code + "\n").body)


@st.composite
def spliced_programs(draw: st.DrawFn, base: Optional[st.SearchStrategy[str]] = None) -> str:
    """A hypothesmith program with torch hazards spliced in; always compiles."""
    source = draw(base if base is not None else generated_programs())
    imports, torch_name, functional = draw(st.sampled_from(IMPORTS))

    def fill(template: str) -> str:
        return template.replace("{T}", torch_name).replace("{F}", functional)

    try:
        module = cst.parse_module(source)
    except Exception:  # libcst cannot parse it: append at the end
        module = None
    if module is not None:
        collect = _Collect()
        module.visit(collect)
        replace: dict[cst.CSTNode, cst.BaseExpression] = {}
        if collect.expressions:
            for _ in range(draw(st.integers(0, 3))):
                target = draw(st.sampled_from(collect.expressions))
                expression = fill(draw(st.sampled_from(EXPRESSIONS)))
                replace[target] = cst.parse_expression(f"({expression})")
        insert: dict[cst.CSTNode, list[tuple[int, list[cst.BaseStatement]]]] = {}
        for _ in range(draw(st.integers(0 if replace else 1, 3))):
            block = draw(st.sampled_from(collect.blocks))
            code = fill(draw(st.sampled_from(STATEMENTS + (FUNCTION,))))
            index = draw(st.integers(0, len(block.body)))  # type: ignore[attr-defined]
            insert.setdefault(block, []).append((index, _statements(code)))
        if imports:
            insert.setdefault(module, []).append((0, _statements(imports)))
        try:
            spliced = module.visit(_Splice(replace, insert)).code
        except Exception:
            spliced = ""
        if spliced and _compiles(spliced):
            return spliced
        # a replacement landed where an expression cannot go (a target, a decorator ...): insert only
        try:
            spliced = module.visit(_Splice({}, insert)).code
        except Exception:
            spliced = ""
        if spliced and _compiles(spliced):
            return spliced
    tail = fill(draw(st.sampled_from(STATEMENTS + (FUNCTION,))))
    joined = source + ("" if source.endswith("\n") or not source else "\n") + imports + tail + "\n"
    if _compiles(joined):
        return joined
    return imports + tail + "\n"


# -- the oracle ------------------------------------------------------------------------------------
def check_program(source: str, request: LintRequest = REQUEST, path: str = "generated.py",
                  stats: Optional[dict[str, int]] = None) -> list[str]:
    """Lint and fix ``source``; the problems found (an empty list when nanlint behaved).

    ``stats`` (optional) counts programs, findings, programs with findings and programs changed by fixes.
    """
    problems: list[str] = []
    try:
        result = lint_source(path, source, request)
    except Exception as exc:  # noqa: BLE001 - the point is to catch anything
        return [f"lint_source raised {type(exc).__name__}: {exc}"]
    if stats is not None:
        stats["programs"] = stats.get("programs", 0) + 1
        stats["findings"] = stats.get("findings", 0) + len(result.findings)
        stats["with_findings"] = stats.get("with_findings", 0) + bool(result.findings)
    for finding in result.findings:
        if finding.code == INTERNAL_ERROR_CODE:
            problems.append(f"lint: {finding.message}")
        if finding.code == FILE_ERROR_CODE and _compiles(source) and "nesting" not in finding.message:
            if _libcst_refuses(source):  # a libcst gap, e.g. `(a): int` (a parenthesised annotation target)
                if stats is not None:
                    stats["libcst_refused"] = stats.get("libcst_refused", 0) + 1
                continue
            problems.append(f"lint: a program that compiles was refused: {finding.message}")
    try:
        outcome = fix_source(path, source, request, unsafe=True)
    except Exception as exc:  # noqa: BLE001
        return problems + [f"fix_source raised {type(exc).__name__}: {exc}"]
    for finding in outcome.remaining:
        if finding.code == INTERNAL_ERROR_CODE:
            problems.append(f"fix: {finding.message}")
    if outcome.changed:
        if stats is not None:
            stats["fixed"] = stats.get("fixed", 0) + 1
        if not _compiles(outcome.source):
            problems.append("fix: the fixed program does not compile")
        else:
            try:
                again = fix_source(path, outcome.source, request, unsafe=True)
            except Exception as exc:  # noqa: BLE001
                return problems + [f"second fix_source raised {type(exc).__name__}: {exc}"]
            if again.changed:
                problems.append("fix: a second fix run changed the fixed program again")
    return problems


def _libcst_refuses(source: str) -> bool:
    try:
        cst.parse_module(source)
    except Exception:  # noqa: BLE001
        return True
    return False


def ast_of(source: str) -> Optional[ast.Module]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
