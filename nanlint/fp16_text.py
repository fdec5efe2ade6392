"""What a file's text says about float16 before anything is parsed: the evidence regexes that the precision
analysis (:mod:`nanlint.precision`, :class:`nanlint.context.FileContext`) reads, and the file-level necessary
condition the float16 rules' screens test (``may_have_fp16_evidence``). Imports neither libcst nor a rule, so
that a run whose files hold nothing to parse never imports them."""
from __future__ import annotations

import functools
import re
from typing import Optional

# Evidence that a file's tensors can be float16 (docs/architecture.md §3).
FP16_EVIDENCE = re.compile(  # literal-first alternatives (no optional leading group): 5x faster, same matches
    r"torch\.float16|torch\.half\b|\.half\(\)|dtype\s*=\s*['\"]?(?:float16|half)|GradScaler|"
    r"torch\.cuda\.amp\.autocast\(\s*\)|torch\.amp\.autocast\(\s*\)|cuda\.amp\.autocast\(\s*\)|amp\.autocast\(\s*\)|"
    r"autocast\(\s*(?:device_type\s*=\s*)?['\"]cuda['\"]\s*(?:,\s*enabled\s*=[^,()]*)?\)|"
    r"fp16\s*=\s*True|precision\s*=\s*['\"]?16|mixed_precision\s*=\s*['\"]fp16['\"]"
)

# float16 tensors exist. ``torch.float16`` right after ``autocast(`` on the same line is autocast evidence.
TENSOR_EVIDENCE = re.compile(  # literal-first (word boundaries as lookbehinds): 10x faster, same matches
    r"\.half\(\s*\)|torch(?<!\wtorch)\.(?:float16|half)\b|HalfTensor(?<!\wHalfTensor)\b|"
    r"dtype(?<!\wdtype)\s*=\s*['\"](?:float16|half|fp16)['\"]"
)


AUTOCAST_LINE = re.compile(r"autocast\s*\(|amp_dtype|autocast_dtype|mixed_precision")
# the parameters themselves are float16 (not float32 master weights under AMP)
PARAM_EVIDENCE = re.compile(
    r"\.half\(\s*\)|\.to\(\s*(?:dtype\s*=\s*)?torch\.(?:float16|half)\s*\)|"
    r"torch_dtype\s*=\s*torch\.(?:float16|half)\b|set_default_dtype\(\s*torch\.(?:float16|half)\s*\)|"
    r"\.type\(\s*torch\.(?:float16|half|cuda\.HalfTensor|HalfTensor)\s*\)"
)
BF16_EVIDENCE = re.compile(r"\btorch\.bfloat16\b|['\"]bf16(?:-mixed|-true)?['\"]|\bbf16\s*=\s*True|\.bfloat16\(\s*\)")
AMP_SCALER = re.compile(r"GradScaler")
DEFAULT_DTYPE = re.compile(r"set_default_dtype|set_default_tensor_type")
DISABLED_AUTOCAST = re.compile(r"autocast\s*\([^)]*enabled\s*=\s*False")
# ``x.half().float()``: a round trip through float16 (to quantise, or to compare at half precision), after
# which the value is float32 again
ROUND_TRIP = re.compile(r"\s*\.\s*(float\(\s*\)|to\(\s*(dtype\s*=\s*)?torch\.float32\s*\)|type\(\s*torch\.float32\s*\))")
# What the precision analysis reads anywhere in a file's text (``ctx.source``), whatever code it analyses: float16
# and bfloat16 evidence, autocast, a GradScaler, a changed default dtype, and what makes evidence not apply
# (:mod:`nanlint.precision`, :mod:`nanlint.analysis.dtype`). The language server's preview
# (nanlint/incremental.py) lints the whole text when an edit adds or removes any of it.
FILE_FACTS = (FP16_EVIDENCE, TENSOR_EVIDENCE, AUTOCAST_LINE, PARAM_EVIDENCE, BF16_EVIDENCE, AMP_SCALER,
              DEFAULT_DTYPE, DISABLED_AUTOCAST, ROUND_TRIP)


def may_have_fp16_evidence(source: str, declared: Optional[tuple[str, ...]]) -> bool:
    """A necessary condition of :func:`nanlint.precision.fp16_evidence` on the text alone (for ``Rule.may_fire``)."""
    if declared is not None:
        return "float16" in declared
    return _may_have_fp16_evidence(source)


@functools.lru_cache(maxsize=8)  # each float16 rule asks it of the same text (a str caches its hash)
def _may_have_fp16_evidence(source: str) -> bool:
    if not any(word in source for word in _EVIDENCE_WORDS):  # str.find is ~50x faster than the regexes
        return False
    return any(part.search(source) for part in _evidence_parts())


@functools.lru_cache(maxsize=1)
def _evidence_parts() -> "tuple[re.Pattern[str], ...]":
    """The top-level alternatives of both regexes: one of them matches where the regex does, and each, beginning
    with its literal, is found by a fast search (the joined alternation is tried at every position: 3.6 ms of a
    5,300-line file, what the language server asked at every keystroke)."""
    from .rules._screens import alternatives

    return tuple(re.compile(piece) for regex in (TENSOR_EVIDENCE, FP16_EVIDENCE)
                 for piece in alternatives(regex.pattern, regex.flags))


# every alternative of TENSOR_EVIDENCE and FP16_EVIDENCE spells one of these
_EVIDENCE_WORDS = ("float16", "half", "Half", "GradScaler", "autocast", "fp16", "precision")
