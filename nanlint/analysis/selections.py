"""Masks, counts and selections: a number of selected items that can be 0."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from ..names import TorchCall, builtin_name, dotted_name, match_call
from ..scope import Binding
from .shapes import dim_argument
from .vocabulary import ADJACENCY_NAME, INDICATOR_NAME, At, BROADCASTS, SCATTER_SUM_FUNCTIONS, same_vector, Count, DEGREE_FUNCTIONS, SCATTER_COUNTS, SELF_LOOP_NAME, TRANSPARENT_OPS, _CASTS, _MASK_NAME, _MASK_OPS, _MAX_DEPTH, _NEVER_ZERO_FACTORIES, _VALUE_COMPARISONS, _string_index, names_in


# what a mask of the pairs (i, j) of one batch holds on its diagonal (:meth:`Selections.pair_mask`)
DIAGONAL = "diagonal"  # true at (i, i): ``labels[:, None] == labels[None, :]``
OFF_DIAGONAL = "off-diagonal"  # the same with the diagonal removed: the positives of a contrastive loss
_REFLEXIVE = (cst.Equal, cst.GreaterThanEqual, cst.LessThanEqual)
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
            return own if _MASK_NAME.search(last) or INDICATOR_NAME.match(last) else None
        return None

    def count(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Count"]:
        """``mask.sum()``, ``count_nonzero(m)``, ``len(x[m])``...: a number of selected items that can be 0."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.assignment(expr, at)
            if b is None:
                return None
            if isinstance(expr, cst.Name) and self.mutated_in_place(expr.value, b, at):
                # ``deg = zeros(N); deg.scatter_add_(0, row, ones)`` builds a degree; ``n.clamp_(min=1)`` guards
                built = self._degree_in_place(expr.value, b, at, d)
                return built.with_names({expr.value}) if built is not None else None
            inner = self.count(b.value, At(b.scope, b.order), d)
            return inner.with_names({dotted_name(expr) or ""}) if inner is not None else None
        if isinstance(expr, cst.Subscript):
            from .triggers import nonzero_filter

            if nonzero_filter(self, expr, at):  # type: ignore[arg-type]
                return None  # ``cnt[cnt > 0]``, ``cnt[has_pos]``: only the non-zero counts are kept
            inner = self.count(expr.value, at, d)
            if inner is not None and ("degree" in inner.kind or "bin count" in inner.kind) and inner.origin \
                    and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) \
                    and names_in(expr.slice[0].slice.value) == inner.origin:
                return None  # ``deg[dst]`` read back at the index it was built from: every read slot counted one
            return inner
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            # ``probs.sum(-1) + target.sum(-1)`` of masked values (a dice denominator): 0 when every term is,
            # each for the same ordinary input; one positive term (a smoothing constant) keeps the sum away
            terms = [self.count(term, at, d) for term in (expr.left, expr.right)]
            if any(t is None for t in terms):
                return None
            first, second = terms
            assert first is not None and second is not None
            origin = first.origin | second.origin
            return Count(first.kind, expr, first.names | second.names, origin, first.tensor or second.tensor)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Divide):
            # ``counts / counts.sum()``, ``counts / n``: a frequency, 0 where the count is
            return self.count(expr.left, at, d)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            # a product is 0 whenever one factor is: ``C * torch.bincount(y, minlength=C)``, ``2 * deg``
            for c, other in ((expr.left, expr.right), (expr.right, expr.left)):
                scale = self.literal(other, at)
                if scale is not None and scale <= 0:
                    return None
                found = self.count(c, at, d)
                if found is not None:
                    return found
            return None
        if not isinstance(expr, cst.Call):
            return None
        degree = self.degree(expr, at, d)
        if degree is not None:
            return degree
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
        if key in ("sqrt", "sqrt_", "float_power") or key in ("pow", "pow_") and (
                self.literal(tc.argument("exponent", 0), at) or 0) > 0:
            return self.count(tc.operand, at, d)  # ``deg.sqrt()`` is 0 where ``deg`` is
        if key in ("sum", "nansum"):
            if self.category_reduction(tc, at, d):
                names = names_in(tc.operand)
                return Count("category count", expr, names, names, True)
            pairs = self.pair_mask(tc.operand, at)
            if pairs == DIAGONAL:
                return None  # ``(labels[:, None] == labels[None, :]).sum(1)``: each sample pairs with itself
            if pairs == OFF_DIAGONAL:
                names = names_in(tc.operand)
                return Count("count of positive pairs", expr, names, names, True)
            if tc.args and self._adjacency(tc.operand, at, d):
                # ``adj.sum(-1)``: the degree of each node of a dense adjacency matrix
                return Count("node degree", expr, names_in(tc.operand), names_in(tc.operand), True)
            selected = self.mask(tc.operand, at, d)
            if selected is not None:
                return Count("mask sum", expr, selected, selected, True)
            masked = self.masked_values(tc.operand, at, d)
            return Count("masked sum", expr, masked, masked, True) if masked is not None else None
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

    def masked_values(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[frozenset]:
        """Names of the mask when ``expr`` is a value times a 0/1 mask (``torch.sigmoid(x) * valid``), through
        names: every entry is 0 where the mask is, so its sum is 0 for an all-masked row (else None)."""
        if depth > _MAX_DEPTH:
            return None
        value, where = self.resolve(expr, at)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
            factors: tuple[cst.BaseExpression, ...] = (value.left, value.right)
        else:
            tc = match_call(value, self.imports) if isinstance(value, cst.Call) else None
            if tc is None or tc.operand is None or tc.key not in ("mul", "multiply") or tc.positional(0) is None:
                return None
            factors = (tc.operand, tc.positional(0))  # type: ignore[assignment]
        for factor in factors:
            mask = self.mask(factor, where, depth + 1)
            if mask is not None:
                return mask
        return None

    # -- one-hot encodings: a category no sample falls in has a count of 0 ---------------------------------
    def category_reduction(self, tc: TorchCall, at: At, depth: int = 0) -> bool:
        """``encodings.sum(0)`` / ``torch.mean(encodings, dim=0)`` of one-hot rows: a count or frequency per
        category, 0 for a category no row falls in. Only over dim 0 (the rows): the last dim of a one-hot
        sums to 1, and other dims depend on a shape nanlint cannot see."""
        if tc.operand is None or not self.is_tensor_method(tc):
            return False
        dim = dim_argument(tc)
        if dim is None or self.literal(dim, at) != 0:
            return False
        return self.one_hot_rows(tc.operand, at, depth + 1)

    def one_hot_rows(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> bool:
        """A one-hot encoding with a row per sample: ``F.one_hot(idx, K)`` through casts and reshapes, or
        ``zeros(N, K)`` filled in place by ``scatter_(1, idx, 1)`` (the VQ-VAE spelling)."""
        for _ in range(_MAX_DEPTH - depth):
            if isinstance(expr, cst.Name):
                b = self.assignment(expr, at)
                if b is None or b.value is None:
                    return False
                calls = self.in_place_calls(expr.value, b, at)
                if calls:
                    scatter = match_call(calls[0][0], self.imports)
                    return len(calls) == 1 and self._zeros(b.value, At(b.scope, b.order)) \
                        and scatter is not None and self._scatters_ones(scatter, at)
                expr, at = b.value, At(b.scope, b.order)
                continue
            if isinstance(expr, cst.Comparison):
                # ``labels[:, None] == torch.arange(K)[None, :]``: a row per sample, one true column
                return len(expr.comparisons) == 1 and isinstance(expr.comparisons[0].operator, cst.Equal) and any(
                    self._arange(side, at) for side in (expr.left, expr.comparisons[0].comparator))
            if not isinstance(expr, cst.Call):
                return False
            tc = match_call(expr, self.imports)
            if tc is None:
                return False
            if tc.key.rsplit(".", 1)[-1] == "one_hot" and not tc.is_method:
                return True
            if tc.key == "scatter_" and tc.operand is not None and self._zeros(tc.operand, at):
                return self._scatters_ones(tc, at)
            if tc.operand is None or not (tc.key in _CASTS or tc.key in ("view", "reshape", "flatten")):
                return False
            expr = tc.operand
        return False

    def _scatters_ones(self, tc: TorchCall, at: At) -> bool:
        """``x.scatter_(1, idx, 1)``: a 1 written at each row's index (into zeros: a one-hot row)."""
        return tc.key == "scatter_" and self.literal(tc.argument("value", 2) or tc.argument("src", 2), at) == 1

    # -- masks of pairs (i, j) of one batch: what their diagonal holds ------------------------------------
    def pair_mask(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[str]:
        """:data:`DIAGONAL` when ``expr`` compares a vector with itself broadcast as rows and columns
        (``labels[:, None] == labels[None, :]``, ``torch.eq(l, l.T)``): true at every ``(i, i)``, so each row
        counts at least one pair. :data:`OFF_DIAGONAL` for such a mask with its diagonal removed (times
        ``1 - eye``, ``~eye``, a ``scatter`` of zeros at ``arange``; ``fill_diagonal_(0)``; ``- eye``): a row
        whose label no other sample shares counts none. None otherwise."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None:
                return None
            where = At(b.scope, b.order)
            if b.operator is not None:  # ``mask *= logits_mask``
                previous = b.previous
                if isinstance(b.operator, (cst.MultiplyAssign, cst.BitAndAssign)) and previous is not None \
                        and previous.value is not None and not previous.is_parameter:
                    return self._pair_product(self.pair_mask(previous.value, At(previous.scope, previous.order), d),
                                              b.value, where, d)
                return None
            found = self.pair_mask(b.value, where, d)
            if found is not None and isinstance(expr, cst.Name):
                for call, _ in self.in_place_calls(expr.value, b, at):
                    tc = match_call(call, self.imports)
                    if tc is not None and tc.key == "fill_diagonal_" and self._falsy(tc.argument("fill_value", 0), at):
                        found = OFF_DIAGONAL
                    else:
                        return None  # any other in-place change: not followed
            return found
        if isinstance(expr, cst.Comparison):
            if len(expr.comparisons) == 1 and isinstance(expr.comparisons[0].operator, _REFLEXIVE) \
                    and same_vector(expr.left, expr.comparisons[0].comparator):
                return DIAGONAL
            return None
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, (cst.Multiply, cst.BitAnd)):
                left = self.pair_mask(expr.left, at, d)
                if left is not None:
                    return self._pair_product(left, expr.right, at, d)
                return self._pair_product(self.pair_mask(expr.right, at, d), expr.left, at, d)
            if isinstance(expr.operator, cst.Subtract) and self._identity(expr.right, at):
                return OFF_DIAGONAL if self.pair_mask(expr.left, at, d) == DIAGONAL else None
            return None
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None:
                return None
            other = tc.positional(0)
            if tc.key in ("eq", "ge", "le", "greater_equal", "less_equal") and other is not None:
                return DIAGONAL if same_vector(tc.operand, other) else None
            if tc.key in ("mul", "multiply", "logical_and", "bitwise_and") and other is not None:
                return self._pair_product(self.pair_mask(tc.operand, at, d), other, at, d)
            if tc.key in ("masked_fill", "masked_fill_") and other is not None \
                    and self._identity(other, at) and self._falsy(tc.argument("value", 1), at):
                return OFF_DIAGONAL if self.pair_mask(tc.operand, at, d) == DIAGONAL else None
            if tc.key in BROADCASTS or tc.key in _CASTS:
                return self.pair_mask(tc.operand, at, d)
        return None

    def _pair_product(self, found: Optional[str], other: cst.BaseExpression, at: At, depth: int) -> Optional[str]:
        """A pair mask ``found`` times (or ``&``) ``other``: a zero-diagonal factor removes the diagonal."""
        if found is None:
            return None
        if self._zero_diagonal(other, at, depth):
            return OFF_DIAGONAL
        theirs = self.pair_mask(other, at, depth)
        if theirs is None:
            return None  # an unknown factor may clear any pair
        return OFF_DIAGONAL if OFF_DIAGONAL in (found, theirs) else DIAGONAL

    def _zero_diagonal(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> bool:
        """0 on the diagonal and 1 elsewhere: ``1 - eye(n)``, ``~eye(n, dtype=bool)``, ``logical_not(eye)``,
        ``eye(n) == 0``, ``scatter(ones_like(m), 1, arange(n).view(-1, 1), 0)``, ``ones.fill_diagonal_(0)``."""
        if depth > _MAX_DEPTH:
            return False
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.assignment(expr, at)
            if b is None:
                return False
            if isinstance(expr, cst.Name):
                calls = self.in_place_calls(expr.value, b, at)
                if calls:
                    tc = match_call(calls[-1][0], self.imports)
                    return len(calls) == 1 and tc is not None and tc.key == "fill_diagonal_" \
                        and self._falsy(tc.argument("fill_value", 0), at) and self._ones(b.value, At(b.scope, b.order))
            return self._zero_diagonal(b.value, At(b.scope, b.order), d)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.BitInvert):
            return self._identity(expr.expression, at)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Subtract):
            return (self.literal(expr.left, at) == 1 or self._ones(expr.left, at)) and self._identity(expr.right, at)
        if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1:
            test = expr.comparisons[0]
            return isinstance(test.operator, cst.Equal) and self.literal(test.comparator, at) == 0 \
                and self._identity(expr.left, at)
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None:
                return False
            if tc.key in ("logical_not", "bitwise_not"):
                return self._identity(tc.operand, at)
            if tc.key in ("scatter", "scatter_"):  # ``scatter(ones_like(m), 1, arange(n).view(-1, 1), 0)``
                index, value = tc.argument("index", 1), tc.argument("value", 2)
                return self._ones(tc.operand, at) and index is not None and self._arange(index, at) \
                    and self._falsy(value, at)
            if tc.key == "fill_diagonal_":
                return self._ones(tc.operand, at) and self._falsy(tc.argument("fill_value", 0), at)
            if tc.key in BROADCASTS or tc.key in _CASTS:
                return self._zero_diagonal(tc.operand, at, d)
        return False

    def _identity(self, expr: cst.BaseExpression, at: At) -> bool:
        """``torch.eye(n)`` (through names, casts and ``.bool()``)."""
        return self._factory_call(expr, at, "eye")

    def _arange(self, expr: cst.BaseExpression, at: At) -> bool:
        return self._factory_call(expr, at, "arange")

    def _factory_call(self, expr: cst.BaseExpression, at: At, key: str) -> bool:
        """``torch.<key>(...)``, through names, reshapes and casts."""
        for _ in range(_MAX_DEPTH):
            value, where = self.resolve(expr, at)
            if isinstance(value, cst.Subscript):  # ``torch.arange(K)[None, :]``
                expr, at = value.value, where
                continue
            found = self.call(expr, at)
            if found is None:
                return False
            tc, at = found
            if tc.key == key and not tc.is_method:
                return True
            if tc.operand is None or not (tc.key in BROADCASTS or tc.key in _CASTS):
                return False
            expr = tc.operand
        return False

    def _falsy(self, expr: Optional[cst.BaseExpression], at: At) -> bool:
        if expr is None:
            return False
        if isinstance(expr, cst.Name) and expr.value == "False":
            return True
        return self.literal(expr, at) == 0

    # -- node degrees and bin counts (graph normalisation, per-expert token counts) ------
    def degree(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Count"]:
        """A count per node or bin that is 0 for an isolated node / an empty bin: ``degree(row, N)``
        (torch_geometric), ``torch.bincount(idx, minlength=N)``, ``zeros(N).scatter_add_(0, row, ones)``,
        ``zeros(N).index_add_(0, row, ones)``, ``g.in_degrees()``. None where the index had self-loops added
        first (every node then has degree at least 1)."""
        if not isinstance(expr, cst.Call) or depth > _MAX_DEPTH:
            return None
        qualified = self.imports.qualify(expr.func) if isinstance(expr.func, (cst.Name, cst.Attribute)) else None
        if qualified in DEGREE_FUNCTIONS:
            index = expr.args[0].value if expr.args and expr.args[0].keyword is None else None
            return self._degree_count("node degree", expr, index, at, depth)
        if qualified in SCATTER_SUM_FUNCTIONS:
            return self._library_scatter_count(expr, at, depth)
        tc = match_call(expr, self.imports)
        if tc is None:
            return None
        if tc.is_method and tc.key in ("in_degrees", "out_degrees") and not tc.args:
            return Count("node degree", expr, names_in(expr), names_in(expr), True)  # DGL
        if tc.key == "bincount" and tc.operand is not None and self.is_tensor_method(tc) \
                and tc.keyword("minlength") is not None:
            kind = "weighted bin count" if tc.argument("weights", 0) is not None else "bin count"
            return self._degree_count(kind, expr, tc.operand, at, depth)
        if tc.key in SCATTER_COUNTS and tc.operand is not None:
            return self._scatter_count(tc, tc.operand, at, depth)
        return None

    def _library_scatter_count(self, call: cst.Call, at: At, depth: int) -> Optional["Count"]:
        """``torch_scatter.scatter_add(src, index, dim=0, dim_size=N)`` (also ``scatter_sum``, and ``scatter``
        or PyG's ``utils.scatter`` with a sum reduction): per-index sums of ``src``; ``src`` of ones counts each
        index's entries, so an index no entry falls in (an isolated node) gets 0."""
        def argument(position: int, keyword: str) -> Optional[cst.BaseExpression]:
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value == keyword:
                    return arg.value
            positional = [arg.value for arg in call.args if arg.keyword is None and not arg.star]
            return positional[position] if position < len(positional) else None

        reduce = argument(4, "reduce")
        if reduce is not None and not (isinstance(reduce, cst.SimpleString) and reduce.evaluated_value in (
                "sum", "add")):
            return None  # a mean or max per index, not a count
        src, index = argument(0, "src"), argument(1, "index")
        if src is None or index is None:
            return None
        kind = "node degree" if self._ones(src, at) else "weighted node degree"
        return self._degree_count(kind, call, index, at, depth)

    def _scatter_count(self, tc: "TorchCall", target: cst.BaseExpression, at: At, depth: int) -> Optional["Count"]:
        """``zeros(N).scatter_add_(0, index, src)`` / ``index_add_(0, index, src)``: per-index sums of ``src``
        into zeros; ``src`` of ones counts the entries of each index."""
        if not self._zeros(target, at):
            return None
        index, src = tc.argument("index", 1), tc.argument("src", 2) if tc.key.startswith("scatter") else \
            tc.argument("source", 2)
        if index is None or src is None:
            return None
        kind = "node degree" if self._ones(src, at) else "weighted node degree"
        return self._degree_count(kind, tc.node, index, at, depth)

    def _degree_in_place(self, name: str, b: "Binding", at: At, depth: int) -> Optional["Count"]:
        """``deg = torch.zeros(N); deg.scatter_add_(0, row, ones)``: a degree built in place."""
        calls = self.in_place_calls(name, b, at)
        if len(calls) != 1 or b.value is None:
            return None
        tc = match_call(calls[0][0], self.imports)
        if tc is None or tc.key not in SCATTER_COUNTS:
            return None
        return self._scatter_count(tc, b.value, At(b.scope, b.order), depth + 1)

    def _degree_count(self, kind: str, node: cst.CSTNode, index: Optional[cst.BaseExpression], at: At,
                      depth: int) -> Optional["Count"]:
        if index is not None and self._self_loops(index, at, depth):
            return None
        names = names_in(index) if index is not None else frozenset()
        return Count(kind, node, names, names, True)

    def _self_loops(self, expr: cst.BaseExpression, at: At, depth: int) -> bool:
        """The edge index was returned by ``add_self_loops`` / ``add_remaining_self_loops`` (through names,
        tuple unpacking and ``edge_index[0]``): every node has an edge to itself."""
        for _ in range(_MAX_DEPTH - depth):
            if isinstance(expr, cst.Subscript):
                expr = expr.value
                continue
            if isinstance(expr, cst.Call):
                callee = dotted_name(expr.func) or ""
                if SELF_LOOP_NAME.search(callee.rsplit(".", 1)[-1]):
                    return True
                tc = match_call(expr, self.imports)
                if tc is not None and tc.operand is not None and (tc.key in TRANSPARENT_OPS or tc.key in _CASTS):
                    expr = tc.operand
                    continue
                return False
            b = self.binding(expr, at)
            if b is None or b.value is None or b.operator is not None:
                return False
            expr, at = b.value, At(b.scope, b.order)
        return False

    def _adjacency(self, expr: cst.BaseExpression, at: At, depth: int) -> bool:
        """A dense adjacency matrix (named ``adj`` / ``adjacency``...) with no self-loops added: ``adj + I``,
        ``adj + torch.eye(N)``, ``fill_diagonal_`` make every degree at least 1."""
        value, where = self.resolve(expr, at)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
            return False
        if isinstance(value, cst.Call):
            tc = match_call(value, self.imports)
            if tc is not None and tc.operand is not None and tc.key in TRANSPARENT_OPS | _CASTS and depth < _MAX_DEPTH:
                return self._adjacency(tc.operand, where, depth + 1)
        b = self.binding(expr, at) if isinstance(expr, cst.Name) else None
        if b is not None and self.mutated_in_place(expr.value, b, at):  # type: ignore[union-attr]
            return False  # ``adj.fill_diagonal_(1)``
        last = expr.value if isinstance(expr, cst.Name) else expr.attr.value if isinstance(expr, cst.Attribute) else ""
        return bool(last) and ADJACENCY_NAME.search(last) is not None

    def _zeros(self, expr: cst.BaseExpression, at: At) -> bool:
        found = self.call(expr, at)
        return found is not None and found[0].key in ("zeros", "zeros_like", "new_zeros")

    def _ones(self, expr: cst.BaseExpression, at: At) -> bool:
        if self.literal(expr, at) == 1:
            return True
        found = self.call(expr, at)
        if found is None:
            return False
        tc, where = found
        if tc.key in _NEVER_ZERO_FACTORIES:
            return True
        if tc.key in ("full", "new_full", "full_like"):
            return self.literal(tc.argument("fill_value", 1), where) == 1
        if tc.key in TRANSPARENT_OPS | _CASTS and tc.operand is not None:
            return self._ones(tc.operand, where)
        return False

    def selection(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[frozenset]:
        """Names behind ``expr`` when it is a boolean-mask selection that may be empty: ``x[mask]``,
        ``x[labels != -100]``, ``x.masked_select(m)``, ``x[torch.nonzero(m)]``, ``torch.nonzero(m)``."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.assignment(expr, at)
            if b is None:
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

