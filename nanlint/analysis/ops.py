"""The op vocabulary: named families of torch op names, each saying what an op does to a value.

One table for the whole package: the analysis and the rules ask these families (or a named union of them)
and keep no copy of their own. Names are op keys as ``names.match_call`` spells them: a method or
``torch.`` function name (``view``, ``sum``), ``F.x`` for ``torch.nn.functional.x``, ``linalg.x`` /
``special.x`` for those namespaces, ``nn.X`` for module classes. A table that walks the stdlib AST
(``summary.py``) or tests an attribute name compares the last dotted name with the same strings.
docs/analysis.md ("The op vocabulary") lists the families.
"""
from __future__ import annotations

import re

# values that are a variance by their conventional names, when their origin cannot be seen (a parameter, a
# running statistic of another object): non-negative, and 0 for a constant input. (Here, not in
# ``vocabulary``: the second-stage screen reads it before libcst is imported.)
VARIANCE_NAME = re.compile(r"(?i)^(?:var|variance|variances|sigma2|sigma_sq|sigma_squared|running_var|\w+_var)$")
# values that are a cosine by their names (``_cosine_like``: ``1 - cos ** 2`` is a square that vanishes at parallel
# vectors); the second-stage screen reads it too
COSINE_NAME = re.compile(r"(^|_)(cos|cosine|cos_theta|cosines|sim|similarity|cos_sim)($|_)", re.I)
# the first names of other libraries' modules: a call on one (``math.sqrt(d)``, ``np.linalg.norm(v)``) is no
# torch op, imported or not (``names.ImportTable.is_module``; the second-stage screen reads it too)
FOREIGN_MODULE_ROOTS = frozenset(
    {"math", "numpy", "np", "jax", "jnp", "scipy", "tensorflow", "tf", "cmath", "statistics", "random", "os", "sys"}
)

# -- layout: every element of the result is an element of the operand, values unchanged ------------------
RESHAPES = frozenset({
    "view", "view_as", "reshape", "reshape_as", "unsqueeze", "squeeze", "unsqueeze_", "squeeze_", "flatten",
    "unflatten", "expand", "expand_as", "broadcast_to",
})
TRANSPOSES = frozenset({"permute", "transpose", "t", "T", "mT", "movedim", "swapaxes"})
COPIES = frozenset({"contiguous", "clone"})
REPEATS = frozenset({"repeat", "repeat_interleave"})
REORDERS = frozenset({"flip", "roll"})
# a subset of the elements, values unchanged
SELECTIONS = frozenset({"narrow", "select", "index_select", "gather"})
SPLITS = frozenset({"chunk", "split", "unbind", "tensor_split"})
# the diagonal of a matrix (``diag`` of a vector builds one, zero off the diagonal)
DIAGONALS = frozenset({"diagonal", "diag"})
LAYOUT = RESHAPES | TRANSPOSES | COPIES | REPEATS | REORDERS | SELECTIONS | SPLITS
# ops that pick some entries of their operand (values unchanged): ``e.diag()`` of a matrix of exps, a gather
ENTRY_SELECTIONS = SELECTIONS | DIAGONALS | {"take_along_dim"}
# a vector broadcast or reshaped without changing which values it holds or where (``labels[:, None]``,
# ``labels.view(-1, 1).T``): two of them of one vector compare it with itself (analysis/selections.py)
BROADCASTS = RESHAPES | TRANSPOSES | COPIES | {"detach", "to"}

# reshapes whose arguments spell the new shape (``x.view(B, G, -1)``): their literals and names say the sizes
SHAPED_RESHAPES = frozenset({"view", "reshape"})
# concatenations: statistics pooling puts a mean and a std side by side with one of these
CONCATENATIONS = frozenset({"cat", "stack", "concat", "concatenate", "hstack"})

# -- dtype and device: the value is kept (rounded to the new dtype) ----------------------------------------
FLOAT_CASTS = frozenset({"float", "double", "half", "bfloat16"})
INT_CASTS = frozenset({"long", "int", "short", "byte"})
# the dtype (or device) comes from an argument
ARGUMENT_CASTS = frozenset({"to", "type", "type_as"})
DEVICE_MOVES = frozenset({"cpu", "cuda"})
# every cast a count or a 0/1 mask survives (an integer or bool cast of a count is still that count)
CASTS = FLOAT_CASTS | INT_CASTS | ARGUMENT_CASTS | {"bool"}

# float factories whose result has the default dtype (float32) unless given one: a value built so is not
# float16, whatever else the file casts (NAN501)
DEFAULT_DTYPE_FACTORIES = frozenset({"randn", "rand", "zeros", "ones", "empty", "full", "linspace", "normal"})

# -- gradient -------------------------------------------------------------------------------------------
DETACH = frozenset({"detach"})
# methods that cut the autograd graph: no gradient reaches their receiver through them
GRAPH_CUTS = DETACH | {"detach_", "item", "tolist", "numpy"}
# methods that give a Python number or list
PYTHON_NUMBER_METHODS = frozenset({"item", "tolist"})

# The value-keeping ops: the result holds the operand's values (whether it can be 0, its bound, whether it is a
# probability, a mask or a count) in another layout, dtype or device; ``item`` is its one element.
TENSOR_VALUE_KEEPING = LAYOUT | FLOAT_CASTS | ARGUMENT_CASTS | DEVICE_MOVES | DETACH
VALUE_KEEPING = TENSOR_VALUE_KEEPING | {"item"}
TRANSPARENT_OPS = VALUE_KEEPING
# ops whose result has the operand's shape: casts, copies, device moves and element-wise maths
SAME_SHAPE = FLOAT_CASTS | ARGUMENT_CASTS | COPIES | DETACH | DEVICE_MOVES | frozenset({
    "abs", "pow", "square", "sqrt", "exp", "log", "relu", "sigmoid", "tanh", "F.relu", "F.gelu", "F.silu",
    "clamp", "clamp_min", "clip", "nan_to_num",
})
# ops that keep a matrix of cosines a matrix of cosines (a transpose, its diagonal)
COSINE_KEEPING = VALUE_KEEPING | DIAGONALS

# -- reductions and measures ----------------------------------------------------------------------------
REDUCE_OPS = frozenset({"sum", "mean", "nansum", "nanmean"})
MEANS = frozenset({"mean", "nanmean", "average"})  # ``average``: numpy's (weighted) mean
# what a norm is, whatever it is called
NORM_OPS = frozenset({"norm", "linalg.norm", "linalg.vector_norm", "linalg.matrix_norm", "dist"})
SPREADS = frozenset({"std", "var", "std_mean", "var_mean"})
EXTREMA = frozenset({"max", "min", "amax", "amin"})
# reductions that return entries of their operand: 0 where the operand is (``d2.min(dim=1).values``)
ORDER_STATISTICS = EXTREMA | {"median", "nanmedian", "kthvalue", "sort", "msort", "topk", "cummin", "cummax"}
# ops that are 0 exactly when their operand is (a zero vector, a constant input): reductions, norms, spreads,
# powers and roots, a floor at 0
MEASURES = REDUCE_OPS | NORM_OPS | SPREADS | {
    "abs", "absolute", "clamp", "clamp_min", "clip", "pow", "square", "cumsum", "sqrt", "rsqrt", "square_",
    "sqrt_", "amax", "max",
}
# element-wise ops that are 0 where their operand is (besides layout ops, reductions and norms)
VANISHING_OPS = frozenset({
    "abs", "absolute", "square", "sqrt", "relu", "F.relu", "neg", "negative", "sign", "tanh", "sin", "cumsum",
})

# -- clamps and caps ------------------------------------------------------------------------------------
# clamps that can set a floor (``clamp(min=)``, ``clamp_min``): they keep a value away from 0
FLOOR_CLAMPS = frozenset({"clamp", "clip", "clamp_", "clip_", "clamp_min", "clamp_min_"})
CLAMPS = FLOOR_CLAMPS | {"clamp_max", "clamp_max_"}
# clamps (and hard activations) that can keep a value inside [-1, 1]
UNIT_CLAMPS = CLAMPS | {"hardtanh", "F.hardtanh"}
# an upper cap on a value (``minimum(x, c)``, ``x.clamp_max(c)``)
CAPS = frozenset({"minimum", "min", "fmin", "clamp_max", "clamp_max_"})
# ops that drop or replace a NaN where they are applied
NAN_REPAIRS = frozenset({"nan_to_num", "nan_to_num_", "nansum", "nanmean", "nanmedian"})

# -- factories: results that come from no input -----------------------------------------------------------
ZERO_FACTORIES = frozenset({"zeros", "zeros_like", "new_zeros"})
ONE_FACTORIES = frozenset({"ones", "ones_like", "new_ones"})
FILL_FACTORIES = frozenset({"full", "full_like", "new_full"})
EMPTY_FACTORIES = frozenset({"empty", "empty_like", "new_empty"})
# a fill of every element with one constant: the fill factories and ``x.fill_(c)``
CONSTANT_FILLS = FILL_FACTORIES | {"fill_"}
# every element the same constant (``empty`` counts: whatever it holds is overwritten before it is read)
CONSTANT_FACTORIES = ZERO_FACTORIES | ONE_FACTORIES | FILL_FACTORIES | EMPTY_FACTORIES
# methods that build a new tensor with the receiver's dtype and device (no value flows from the receiver)
NEW_FACTORIES = frozenset({"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"})
DATA_FACTORIES = frozenset({"tensor", "as_tensor", "from_numpy", "new_tensor"})
RANGE_FACTORIES = frozenset({"arange", "linspace", "logspace", "meshgrid", "eye"})
# random samples: exactly 0 only by a degenerate draw
SAMPLERS = frozenset({"randn", "rand", "randn_like", "rand_like", "normal", "normal_", "uniform_", "randint"})
# tensor factories called as ``torch.`` functions: their results never require grad (unless asked to)
FACTORIES = RANGE_FACTORIES | (CONSTANT_FACTORIES - NEW_FACTORIES) | {"tensor", "as_tensor", "randn", "rand", "randint"}

# -- booleans and indices -------------------------------------------------------------------------------
# ops whose result does not carry their operand's values: a ranking's indices, a NaN test
INDEX_RESULTS = frozenset({"argsort", "argmax", "argmin", "isnan", "isfinite", "isinf", "isneginf", "isposinf",
                           "bucketize", "searchsorted"})
COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
COMPARISON_ALIASES = frozenset({"greater", "greater_equal", "less", "less_equal", "not_equal"})
PREDICATES = frozenset({"isnan", "isinf", "isfinite", "isneginf", "isposinf", "isclose"})
LOGICAL = frozenset({"logical_not", "logical_and", "logical_or", "logical_xor"})
# ops that build a mask (a bool tensor, or a 0/1 sample)
MASK_OPS = COMPARISONS | COMPARISON_ALIASES | PREDICATES | LOGICAL | {"isin", "bool", "bernoulli"}
# ops whose result holds only 0 and 1
ZERO_ONE_OPS = MASK_OPS | {"any", "all"}
# ops whose result is a bool tensor
BOOL_OPS = COMPARISONS | COMPARISON_ALIASES | PREDICATES | LOGICAL | {"isin", "bool", "any", "all", "bernoulli_mask"}
# ops whose result is an integer tensor (indices, counts, integer samples)
INDEX_OPS = frozenset({
    "argmax", "argmin", "argsort", "nonzero", "count_nonzero", "searchsorted", "bucketize", "randint", "randperm",
    "multinomial", "bincount", "floor_divide",
})
INT_OPS = INT_CASTS | INDEX_OPS | {"numel", "one_hot"}  # ``F.one_hot`` returns int64
# a tensor's size as an attribute (a Python int or a sequence of them)
SIZE_ATTRIBUTES = frozenset({"shape", "ndim", "itemsize", "element_size"})
# methods a guard calls on what it tests for emptiness or zero (``mask.any()``, ``n.item()``, ``x.numel()``)
COUNTING_METHODS = frozenset({
    "any", "all", "sum", "numel", "nelement", "nonzero", "count_nonzero", "item", "size", "max", "min", "bool",
})

# -- probabilities and ranges ----------------------------------------------------------------------------
SOFTMAX_OPS = frozenset({"softmax", "F.softmax", "special.softmax"})
LOG_SOFTMAX_OPS = frozenset({"log_softmax", "F.log_softmax", "special.log_softmax"})
SIGMOID_OPS = frozenset({"sigmoid", "F.sigmoid", "special.expit"})
# a log-probability: at most 0
LOG_PROBABILITY_OPS = LOG_SOFTMAX_OPS | {"F.logsigmoid"}
# results in [-1, 1]
UNIT_BOUNDED_OPS = SIGMOID_OPS | SOFTMAX_OPS | {
    "tanh", "F.tanh", "cos", "sin", "F.hardtanh", "F.cosine_similarity", "cosine_similarity", "F.hardsigmoid",
}
# results that are never negative
NON_NEGATIVE_OPS = NORM_OPS | {
    "abs", "absolute", "F.relu", "relu", "relu_", "F.relu6", "square", "exp", "F.softplus", "sqrt", "cdist",
    "F.pairwise_distance", "pairwise_distance", "F.pdist", "pdist", "sigmoid", "F.sigmoid", "softmax",
    "F.softmax", "numel", "count_nonzero",
}
LOGS = frozenset({"log", "log_", "log2", "log10"})

# value-keeping steps a score tensor goes through on its way to softmax: layout, casts, scaling, shifting,
# filling and ``tanh`` soft-capping keep a -inf (or a large negative fill) where it was
SCORE_PASS_THROUGH = VALUE_KEEPING | {
    "mul", "div", "true_divide", "mul_", "div_", "add", "add_", "sub", "sub_", "masked_fill", "masked_fill_",
    "masked_scatter", "where", "tanh",
}

# -- arithmetic -----------------------------------------------------------------------------------------
DIVIDE_OPS = frozenset({"div", "divide", "true_divide", "div_", "divide_", "true_divide_"})
# ``x.masked_fill(m, 0)``, ``x * m``: zero where a mask says
MASKING = frozenset({"masked_fill", "masked_fill_", "mul", "multiply"})
# matrix products of two operands (the cross term ``a @ b.T`` of an expanded squared distance)
MATRIX_PRODUCTS = frozenset({"mm", "matmul", "bmm", "einsum"})
# ``c + alpha * a @ b``: ``addmm(c, a, b, alpha=-2)`` adds -2 a.b to ``c``
ADD_PRODUCT_OPS = frozenset({"addmm", "addmm_", "baddbmm", "baddbmm_"})
# ops the value analysis (``zeros.py``) can call a square, a variance, a norm or an MSE (a square-root hazard's
# sources; ``** 2`` and ``a * a`` are its operators): what ``screening`` looks for before a root's operand
SQUARE_SOURCE_OPS = NORM_OPS | ADD_PRODUCT_OPS | frozenset({
    "var", "var_mean", "F.mse_loss", "nn.MSELoss", "square", "square_", "sqrt", "sqrt_", "diag", "diagonal", "pow",
    "pow_", "float_power",
})
# matrix and vector products: a learned projection or an inner product
PRODUCTS = frozenset({
    "matmul", "mm", "bmm", "einsum", "F.linear", "F.bilinear", "addmm", "baddbmm", "dot", "inner", "vdot",
    "linalg.vecdot",
})
# torch functions whose first two arguments are tensors of the result's dtype (eps.py tries the second one when
# the first cannot be named, as in ``F.mse_loss(model(x), y)``)
BINARY_OPS = frozenset({
    "F.mse_loss", "F.l1_loss", "F.smooth_l1_loss", "F.huber_loss", "sub", "subtract", "add", "mul", "multiply",
    "maximum", "minimum", "dist", "hypot",
})

# -- losses and layers ----------------------------------------------------------------------------------
# losses that are 0 for two equal inputs (a perfect prediction)
REGRESSION_LOSSES = frozenset({"F.mse_loss", "F.l1_loss", "F.smooth_l1_loss", "F.huber_loss"})
# functional losses and their modules whose default reduction is a mean over the elements
MEAN_LOSSES = REGRESSION_LOSSES | {
    "F.cross_entropy", "F.nll_loss", "F.binary_cross_entropy", "F.binary_cross_entropy_with_logits",
    "F.soft_margin_loss",
}
MEAN_LOSS_MODULES = frozenset({
    "nn.MSELoss", "nn.L1Loss", "nn.SmoothL1Loss", "nn.HuberLoss", "nn.CrossEntropyLoss", "nn.NLLLoss",
    "nn.BCELoss", "nn.BCEWithLogitsLoss", "nn.SoftMarginLoss",
})
# learned affine layers: their output is a projection of the input
LINEAR_LAYERS = frozenset({
    "nn.Linear", "nn.LazyLinear", "nn.Bilinear", "nn.Conv1d", "nn.Conv2d", "nn.Conv3d", "nn.ConvTranspose1d",
    "nn.ConvTranspose2d", "nn.ConvTranspose3d", "nn.LazyConv1d", "nn.LazyConv2d", "nn.LazyConv3d", "nn.Embedding",
})
# ``nn.Module`` methods that return the module itself
MODULE_SELF_METHODS = FLOAT_CASTS | DEVICE_MOVES | {"to", "type", "train", "eval", "requires_grad_"}

# -- graphs ---------------------------------------------------------------------------------------------
# graph degrees and bin counts: 0 for an isolated node or an empty bin
DEGREE_FUNCTIONS = frozenset({"torch_geometric.utils.degree", "torch_geometric.utils.degree.degree"})
SCATTER_COUNTS = frozenset({"scatter_add_", "scatter_add", "index_add_", "index_add"})
# library scatters that sum ``src`` per index (``src`` first, ``index`` second; ``scatter`` sums unless
# ``reduce=`` says otherwise): of ones, a count per node
SCATTER_SUM_FUNCTIONS = frozenset({
    "torch_scatter.scatter_add", "torch_scatter.scatter_sum", "torch_scatter.scatter",
    "torch_geometric.utils.scatter",
})

# -- kinds and dtypes -----------------------------------------------------------------------------------
# ops whose result is a float tensor
FLOAT_OPS = frozenset({
    "softmax", "F.softmax", "log_softmax", "F.log_softmax", "sigmoid", "F.sigmoid", "exp", "log", "sqrt",
    "rsqrt", "norm", "linalg.norm", "linalg.vector_norm", "std", "var", "randn", "rand", "randn_like",
    "rand_like", "F.normalize", "F.linear", "matmul", "mm", "bmm", "tanh", "F.mse_loss", "F.cosine_similarity",
    "cosine_similarity", "F.relu", "relu", "linspace", "logspace", "mean", "erf", "sin", "cos", "atan2",
    "F.softplus", "softplus", "F.gelu", "F.layer_norm", "lerp", "reciprocal", "acos", "asin",
})
# ops whose result has the kind (float / int / bool tensor) of their first tensor input: layout ops, a device
# move, ``to`` (mostly a device), and arithmetic that keeps integers integers
KIND_PRESERVING = LAYOUT | DETACH | DEVICE_MOVES | EXTREMA | {
    "to", "sum", "cumsum", "prod", "abs", "neg", "square", "diff", "clamp", "clamp_min", "clamp_max", "clip",
    "tril", "triu", "masked_fill",
}
# casts to float32 or wider
UPCASTS = FLOAT_CASTS - {"half", "bfloat16"}
# Tensor methods whose result has the receiver's floating dtype: eps.py follows the receiver. Any other method
# (``self.proj(h)``, ``model(x)``) may be a module call whose output dtype is unknown (autocast).
DTYPE_KEEPING_METHODS = LAYOUT | DETACH | DEVICE_MOVES | REDUCE_OPS | EXTREMA | {
    "abs", "absolute", "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "neg", "pow",
    "square", "sqrt", "rsqrt", "exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid", "relu", "softmax",
    "log_softmax", "norm", "std", "var", "prod", "cumsum", "clamp", "clip", "clamp_min", "clamp_max",
    "masked_fill", "where", "diff", "matmul", "mm", "bmm", "dot", "outer", "add_", "sub_", "mul_", "div_", "pow_",
    "clamp_", "clamp_min_", "abs_",
}
# Ops that CUDA autocast runs in float32 (PyTorch AMP docs, "CUDA Ops that can autocast to float32").
AUTOCAST_F32_OPS = frozenset({
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log1p", "log2", "reciprocal", "rsqrt",
    "sinh", "tan", "pow", "softmax", "F.softmax", "log_softmax", "F.log_softmax", "softmin", "F.softmin",
    "cumprod", "cumsum", "dist", "cdist", "pdist", "F.pdist", "renorm", "prod", "sum", "norm", "logsumexp",
    "F.normalize", "F.cosine_similarity", "cosine_similarity", "F.layer_norm", "layer_norm", "F.group_norm",
    "group_norm", "F.softplus", "F.mse_loss", "F.l1_loss", "F.smooth_l1_loss", "F.huber_loss", "F.kl_div",
    "F.nll_loss", "F.cross_entropy", "F.binary_cross_entropy_with_logits", "F.cosine_embedding_loss",
    "F.margin_ranking_loss", "F.poisson_nll_loss", "F.triplet_margin_loss",
})
# ops whose result has their input's dtype under autocast (so an autocast-float32 input stays float32):
# the dtype-keeping methods without the products autocast runs in float16
AUTOCAST_DTYPE_KEEPING = (DTYPE_KEEPING_METHODS - PRODUCTS - {"outer"}) | {"F.relu"}
# Methods numpy arrays (and Python numbers) do not have: a receiver that has them is a tensor.
TORCH_ONLY_METHODS = frozenset({
    "norm", "pow", "square", "sqrt", "rsqrt", "clamp", "clamp_min", "clamp_max", "masked_fill", "unsqueeze",
    "detach", "contiguous", "float", "half", "bfloat16", "double", "type_as", "view_as", "expand", "expand_as",
    "permute", "softmax", "log_softmax", "sigmoid", "relu", "exp", "log", "sub", "add", "mul", "div", "abs",
    "amax", "amin", "square_", "sqrt_", "pow_", "mul_", "add_", "sub_", "div_", "abs_", "to", "cuda", "cpu",
    "nansum", "nanmean", "logsumexp",
})
# Methods numpy arrays have too: evidence of a tensor only in a file that does not import numpy.
NUMPY_SHARED_METHODS = frozenset({
    "mean", "sum", "std", "var", "max", "min", "prod", "cumsum", "reshape", "transpose", "flatten", "squeeze",
    "repeat", "clip", "view", "round", "diff", "dot",
})
# methods whose arguments give only a dtype, device or shape: no value (and no gradient) flows from them
META_ARGUMENT_METHODS = NEW_FACTORIES | {"to", "type_as", "view_as", "expand_as", "reshape_as"}

# -- gradient flow --------------------------------------------------------------------------------------
# calls whose result carries no gradient, whatever their input: factories, samples, indices, masks, sizes,
# integer casts, ``detach`` and Python numbers
GRADIENT_FREE_RESULTS = (RANGE_FACTORIES | CONSTANT_FACTORIES | DATA_FACTORIES | INDEX_OPS | MASK_OPS | INT_CASTS
                         | GRAPH_CUTS | {"rand", "randn", "rand_like", "randn_like", "randint_like", "numel", "size",
                                         "dim", "unique", "len", "range"})
# ops whose result carries a gradient only when their one tensor input does (the other arguments, if any,
# give a dtype, shape, dim or bound): a gradient-free receiver keeps ``x.op(...)`` gradient-free (summary.py
# checks only the receiver of a method; ``torch.op(...)`` needs all its inputs free)
KEEPS_GRADIENT_FREE = LAYOUT | FLOAT_CASTS | ARGUMENT_CASTS | DEVICE_MOVES | EXTREMA | {
    "sum", "mean", "cumsum", "cumprod", "prod", "abs", "neg", "clamp", "clamp_min", "clamp_max", "clip", "floor",
    "ceil", "round", "sqrt", "log", "exp", "stack", "cat", "concat", "tril", "triu", "square", "reciprocal", "sign",
    "diff", "norm", "vector_norm", "linalg.norm", "linalg.vector_norm", "std", "var", "sin", "cos", "tan", "acos",
    "asin", "atan", "rsqrt", "log1p", "expm1", "sort", "topk",
}
# ops whose result carries a gradient only when one of their tensor inputs does
PROPAGATES_GRADIENT = KEEPS_GRADIENT_FREE | {
    "pow", "where", "masked_fill", "mul", "div", "add", "sub", "outer", "einsum", "matmul", "bmm", "mm", "dot",
    "cdist", "dist", "atan2", "hypot", "cross", "minimum", "maximum",
}


# ops that keep an infinite entry infinite (the magnitude survives; layout and casts move it): a later product with
# a 0 there is still 0 * inf (analysis/uses.py)
INF_KEEPING = RESHAPES | TRANSPOSES | COPIES | FLOAT_CASTS | ARGUMENT_CASTS | frozenset({
    "abs", "neg", "negative", "square", "pow",
})
