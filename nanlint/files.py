"""What runs around the analysis, without libcst or the rules: reading and decoding a file, the request
(which rules, precision, options) and the result types.

A run whose every file is answered by the cache (:mod:`nanlint.runner`) imports only this, the
configuration, the rule index (:mod:`nanlint.registry`) and the cache: the rule classes, libcst and the
analysis are imported where a file is analysed (:meth:`LintRequest.rule_classes`, :mod:`nanlint.engine`).
"""
from __future__ import annotations

import ast
import io
import os
import tokenize
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

from .finding import Finding

if TYPE_CHECKING:  # pragma: no cover
    from .rules._screens import RuleScreen
    from .rules.base import Rule

FILE_ERROR_CODE = "NAN000"
FILE_ERROR_NAME = "file-error"
INTERNAL_ERROR_CODE = "NAN999"
INTERNAL_ERROR_NAME = "internal-error"
UNUSED_NOQA_CODE = "NAN001"  # rules/nan001_unused_noqa.py: checked by the engine, after every other rule has run

# LintRequest option (request.build_request(..., suppressions=True)): also return the findings a comment
# suppresses, marked ``extra["suppressed"] = True`` (SARIF `suppressions`), and give every finding
# ``extra["noqa_lines"]``, the lines whose comment would suppress it (``--add-noqa``).
SUPPRESSIONS_OPTION = "suppressions"


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    internal_error: bool = False
    source: Optional[str] = None
    encoding: str = "utf-8"
    # The stdlib tree of ``source`` where the engine parsed one and was asked to keep it (``lint_source(...,
    # keep_tree=True)``; never sent between processes): the language server builds the document's layout from it
    # instead of parsing the text again.
    tree: Optional[ast.Module] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class LintRequest:
    """What to lint one file with: the enabled rules and per-file options.

    ``rules`` holds rule classes or rule codes (``"NAN101"``): the command line passes codes, so that
    building a request, keying the cache and sending the request to a worker import no rule;
    :meth:`rule_classes` resolves them where a file is analysed.
    """

    rules: tuple[Union[type[Rule], str], ...]
    precision: Optional[tuple[str, ...]] = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(rule if isinstance(rule, str) else rule.code for rule in self.rules)

    def rule_classes(self) -> tuple[type[Rule], ...]:
        if all(not isinstance(rule, str) for rule in self.rules):
            return self.rules  # type: ignore[return-value]
        from .rules import rule_class

        return tuple(rule_class(rule) if isinstance(rule, str) else rule for rule in self.rules)

    def rule_screens(self) -> tuple[Union[RuleScreen, type[Rule]], ...]:
        """What the screens read of each rule, importing no rule: a code's ``RuleScreen``
        (``nanlint/_screen_index.py``), a rule class itself (it has the same attributes)."""
        if all(not isinstance(rule, str) for rule in self.rules):
            return self.rules  # type: ignore[return-value]
        from ._screen_index import BY_CODE

        return tuple(BY_CODE[rule] if isinstance(rule, str) else rule for rule in self.rules)


def decode(data: bytes) -> tuple[str, str]:
    """Decode Python source the way the interpreter does (BOM, coding cookie); raises on failure.

    Raises ``SyntaxError`` for a bad coding cookie and ``UnicodeDecodeError``
    (with the offending byte's position) for bytes that are not in the encoding.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "invalid or missing encoding declaration" not in str(exc):
            raise
        encoding = "utf-8"  # undecodable bytes in the first lines: let decode() say where
    return data.decode(encoding), encoding


def file_error(path: str, message: str, line: int = 1, column: int = 1) -> Finding:
    return Finding(FILE_ERROR_CODE, FILE_ERROR_NAME, message, path, line, column, line, column)


def stdlib_tree(source: str, path: str = "<unknown>") -> Optional[ast.Module]:
    """The stdlib parser's tree of ``source``, or None where it rejects it (a syntax error, a null byte, nesting
    too deep for it)."""
    try:
        return compile(source, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)  # type: ignore[no-any-return]
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def python_syntax_error(path: str, source: str) -> Optional[Finding]:
    """Python's own message and position for a syntax error (clearer than libcst's), if it has one."""
    try:
        compile(source, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        finding = file_error(path, f"cannot parse: {exc.msg}", exc.lineno or 1, exc.offset or 1)
        if "too many nested" not in exc.msg:
            finding.extra["newer_syntax_possible"] = True
        return finding
    except (RecursionError, MemoryError):
        return file_error(path, "cannot parse: nesting too deep for the Python parser")
    except ValueError as exc:
        return file_error(path, f"cannot parse: {exc}")
    return None


# libcst holds ~60x a file's size in memory and parses ~20k lines/s: a 4 MB
# generated file took 127 s, and a 50 MB one was killed by the OOM killer on a
# 24 GB machine. Files above this size are reported, not analysed.
MAX_FILE_BYTES = 8 * 1024 * 1024


def read_source(path: str) -> tuple[Optional[str], str, Optional[Finding]]:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                return None, "utf-8", file_error(
                    path, f"not analysed: file is {size / 2**20:.1f} MiB, above nanlint's "
                          f"{MAX_FILE_BYTES // 2**20} MiB limit (generated code?)")
            data = handle.read()
    except IsADirectoryError:
        return None, "utf-8", file_error(path, "cannot read: is a directory")
    except OSError as exc:
        return None, "utf-8", file_error(path, f"cannot read: {exc.strerror or exc}")
    return decode_source(path, data)


def decode_source(path: str, data: bytes) -> tuple[Optional[str], str, Optional[Finding]]:
    try:
        text, encoding = decode(data)
    except SyntaxError as exc:  # bad coding cookie
        return None, "utf-8", file_error(path, f"cannot decode: {exc.msg}")
    except (UnicodeDecodeError, LookupError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            return None, "utf-8", file_error(
                path, f"cannot decode as {exc.encoding}: byte 0x{data[exc.start]:02x} is not valid "
                      f"(add a `# -*- coding: ... -*-` line or save the file as UTF-8)", line, column,
            )
        return None, "utf-8", file_error(path, f"cannot decode: {exc}")
    if "\x00" in text:
        index = text.index("\x00")
        line = text.count("\n", 0, index) + 1
        return None, encoding, file_error(path, "cannot parse: source contains a NUL byte", line)
    return text, encoding, None

