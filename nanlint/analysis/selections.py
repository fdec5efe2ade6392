"""Masks, counts and selections: a number of selected items that can be 0."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from ..names import builtin_name, dotted_name, match_call
from .vocabulary import At, Count, TRANSPARENT_OPS, _CASTS, _MASK_NAME, _MASK_OPS, _MAX_DEPTH, _NEVER_ZERO_FACTORIES, _VALUE_COMPARISONS, _string_index, names_in


class Selections:
    """Masks, counts and selections: a number of selected items that can be 0."""
    # -- masks, counts and selections ----------------------------------------------
    def mask(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[frozenset]:
        """Names behind ``expr`` when it is a 0/1 mask that may be all zero (else None).

        A mask is a comparison (``labels != -100``), a boolean op of masks, ``.bool()``,
        ``isfinite``..., a cast/reshape of a mask, or a value named ``*mask``/``*_mask_*``
        whose origin cannot be seen (``attention_mask``). ``torch.ones(...)`` is never one.
        """
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, cst.Comparison):
            if all(isinstance(t.operator, _VALUE_COMPARISONS) for t in expr.comparisons):
                return names_in(expr)
            return None
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.BitInvert, cst.Not)):
            return self.mask(expr.expression, at, d)
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, (cst.BitAnd, cst.BitOr, cst.BitXor)):
                left, right = self.mask(expr.left, at, d), self.mask(expr.right, at, d)
                if left is None and right is None:
                    return None
                return (left or frozenset()) | (right or frozenset())
            if isinstance(expr.operator, cst.Multiply):
                left, right = self.mask(expr.left, at, d), self.mask(expr.right, at, d)
                return left | right if left is not None and right is not None else None
            return None
        if isinstance(expr, cst.Subscript):
            key = _string_index(expr)
            if key is not None:
                return frozenset({key, *names_in(expr.value)}) if _MASK_NAME.search(key) else None
            return self.mask(expr.value, at, d)
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None or not self.is_tensor_method(tc):
                return None
            if tc.key in _NEVER_ZERO_FACTORIES:
                return None
            if tc.key in _MASK_OPS:
                return names_in(expr)
            if tc.key in TRANSPARENT_OPS or tc.key in _CASTS:
                return self.mask(tc.operand, at, d)
            return None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            own = frozenset({dotted_name(expr) or ""}) - {""}
            if b is not None and b.value is not None and not b.is_parameter and b.operator is None \
                    and b.index is None:
                inner = self.mask(b.value, At(b.scope, b.order), d)
                if inner is not None:
                    return inner | own
                value, _ = self.resolve(b.value, At(b.scope, b.order))
                if isinstance(value, cst.Call):
                    tc = match_call(value, self.imports)
                    if tc is not None and tc.key in _NEVER_ZERO_FACTORIES:
                        return None  # ``mask = torch.ones_like(x)``: never all zero
                    callee = dotted_name(value.func)
                    if callee is not None:
                        own = own | {callee}  # ``mask = self._length_to_mask(...)``: keep where it came from
            last = expr.value if isinstance(expr, cst.Name) else expr.attr.value
            return own if _MASK_NAME.search(last) else None
        return None

    def count(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Count"]:
        """``mask.sum()``, ``count_nonzero(m)``, ``len(x[m])``...: a number of selected items that can be 0."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
                return None
            if isinstance(expr, cst.Name) and self.mutated_in_place(expr.value, b, at):
                return None  # ``n.clamp_(min=1)`` between the assignment and this read
            inner = self.count(b.value, At(b.scope, b.order), d)
            return inner.with_names({dotted_name(expr) or ""}) if inner is not None else None
        if isinstance(expr, cst.Subscript):
            return self.count(expr.value, at, d)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            for c, other in ((expr.left, expr.right), (expr.right, expr.left)):
                scale = self.literal(other, at)
                if scale is not None and scale > 0:
                    return self.count(c, at, d)
            return None
        if not isinstance(expr, cst.Call):
            return None
        builtin = builtin_name(expr, self.imports)
        if builtin in ("float", "int") and len(expr.args) == 1:
            inner = self.count(expr.args[0].value, at, d)
            return inner.as_number() if inner is not None else None
        if builtin == "len" and len(expr.args) == 1:
            selected = self.selection(expr.args[0].value, at, d)
            return Count("length of a selection", expr, selected, selected, False) if selected is not None else None
        tc = match_call(expr, self.imports)
        if tc is None or tc.operand is None or not self.is_tensor_method(tc):
            return None
        key = tc.key
        if key == "count_nonzero":
            return Count("count of nonzero elements", expr, names_in(tc.operand), names_in(tc.operand), True)
        if key in ("sum", "nansum"):
            selected = self.mask(tc.operand, at, d)
            return Count("mask sum", expr, selected, selected, True) if selected is not None else None
        if key == "numel":
            selected = self.selection(tc.operand, at, d)
            return Count("length of a selection", expr, selected, selected, False) if selected is not None else None
        if key in ("clamp", "clip", "clamp_min", "maximum", "fmax", "clamp_", "clamp_min_"):
            return None if self.clamp_guard(tc, at) else self.count(tc.operand, at, d)
        if key in TRANSPARENT_OPS or key in _CASTS:
            inner = self.count(tc.operand, at, d)
            if inner is None:
                return None
            return inner.as_number() if key in ("item", "tolist") else inner
        return None

    def selection(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[frozenset]:
        """Names behind ``expr`` when it is a boolean-mask selection that may be empty: ``x[mask]``,
        ``x[labels != -100]``, ``x.masked_select(m)``, ``x[torch.nonzero(m)]``, ``torch.nonzero(m)``."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
                return None
            inner = self.selection(b.value, At(b.scope, b.order), d)
            return inner | {dotted_name(expr) or ""} if inner is not None else None
        if isinstance(expr, cst.Subscript):
            for element in expr.slice:
                index = element.slice
                if not isinstance(index, cst.Index):
                    continue
                found = self.mask(index.value, at, d)
                if found is None:
                    found = self._index_selection(index.value, at, d)
                if found is not None:
                    return found
            return None
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None or not self.is_tensor_method(tc):
                return None
            if tc.key == "masked_select":
                m = tc.argument("mask", 0)
                found = self.mask(m, at, d) if m is not None else None
                return (found or frozenset()) | names_in(m) if m is not None else None
            if tc.key in ("nonzero", "argwhere"):
                return names_in(tc.operand)
            if tc.key in TRANSPARENT_OPS or tc.key in _CASTS:
                return self.selection(tc.operand, at, d)
        return None

    def _index_selection(self, expr: cst.BaseExpression, at: At, depth: int) -> Optional[frozenset]:
        """An index tensor that may be empty: ``torch.nonzero(m)``, ``torch.where(m)[0]``, ``m.nonzero(...)``."""
        value, where = self.resolve(expr, at)
        if isinstance(value, cst.Subscript):
            value, where = self.resolve(value.value, where)
        if isinstance(value, cst.Call):
            tc = match_call(value, self.imports)
            if tc is not None and tc.operand is not None and self.is_tensor_method(tc):
                if tc.key in ("nonzero", "argwhere"):
                    return names_in(tc.operand)
                if tc.key == "where" and tc.positional(0) is None:
                    return names_in(tc.operand)
                if tc.key in TRANSPARENT_OPS:
                    return self._index_selection(tc.operand, where, depth + 1)
        return None

