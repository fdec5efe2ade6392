"""A content-addressed cache of lint results in ``.nanlint_cache/``.

An entry is found by a key made of the file's bytes (BLAKE2b), the path it is
reported under, and the effective request (the enabled rules, the declared
precision, the rule options). Every entry of one cache file shares a *salt*: the
nanlint version, a hash of nanlint's own source files, the Python version and the
libcst version. Modification times are never consulted (a fresh CI checkout
resets them); an edited file has new bytes and misses.

The cache is never trusted:

* one file per salt, ``<dir>/v1/<salt>.json``: a header line (magic, format,
  salt, length and SHA-256 of the payload) and one JSON payload line. Any
  mismatch (a corrupt or truncated file, another tool's file, another nanlint)
  and the file is ignored and rebuilt; it is JSON, never pickle, so reading it
  cannot run code;
* every entry is checked field by field when it is used; a malformed entry is
  a miss;
* writes go to a temporary file in the same directory and replace the cache file
  atomically (``os.replace``), under an exclusive ``flock`` on ``<salt>.json.lock``
  that serialises concurrent writers: each merges what is on disk first, so no
  writer's entries are lost. A reader takes no lock and sees the old file or the
  new one, never a mix (where ``fcntl`` is missing the last replace wins).

Results with an internal error (NAN999) are not stored, so a crash is retried.
Entries unused for ``MAX_AGE_DAYS`` are dropped when the file is written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from . import __version__
from .finding import Edit, Finding, Fix

CACHE_DIR_NAME = ".nanlint_cache"
FORMAT = 1
MAGIC = "nanlint-cache"
MAX_AGE_DAYS = 30
_SUBDIR = f"v{FORMAT}"

_salt: Optional[str] = None


def salt() -> str:
    """What every entry of one cache file shares: nanlint's version and code, Python, libcst."""
    global _salt
    if _salt is None:
        digest = hashlib.blake2b(digest_size=16)
        package = Path(__file__).resolve().parent
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
        digest.update(f"{__version__}|{sys.implementation.name}|{sys.version}|{_libcst_version()}".encode())
        _salt = digest.hexdigest()
    return _salt


def _libcst_version() -> str:
    """libcst's version without importing libcst (0.25 s) or importlib.metadata (20 ms): the bytes of its
    generated ``_version.py``; the installed distribution's metadata where that file is missing."""
    import importlib.util

    spec = importlib.util.find_spec("libcst")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            with open(os.path.join(folder, "_version.py"), "rb") as handle:
                return hashlib.blake2b(handle.read(), digest_size=8).hexdigest()
        except OSError:
            continue
    try:
        from importlib.metadata import version

        return version("libcst")
    except Exception:  # pragma: no cover - libcst installed without metadata
        return "?"


def request_key(rules: Iterable[Any], precision: Optional[tuple[str, ...]], options: tuple[tuple[str, Any], ...]
                ) -> str:
    """The effective settings of one file: enabled rules (classes or codes), declared precision, rule options."""
    text = json.dumps([sorted(rule if isinstance(rule, str) else rule.code for rule in rules), list(precision) if precision is not None else None,
                       [[k, repr(v)] for k, v in sorted(options, key=lambda kv: kv[0])]])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def entry_key(display: str, settings_key: str, digest: str) -> str:
    return hashlib.blake2b(f"{display}\0{settings_key}\0{digest}".encode(), digest_size=16).hexdigest()


class Cache:
    """The entries of one salt: load once, look up and add during a run, ``save`` at the end."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.file = os.path.join(directory, _SUBDIR, f"{salt()}.json")
        self._today = int(time.time() // 86400)
        self._entries: dict[str, list[Any]] = self._load(self.file)
        self._added: dict[str, list[Any]] = {}
        self.hits = 0
        self.misses = 0

    # -- lookups ----------------------------------------------------------
    def get(self, key: str) -> Optional[list[Finding]]:
        entry = self._added.get(key) or self._entries.get(key)
        findings = decode_entry(entry) if entry is not None else None
        if findings is None:
            self.misses += 1
            return None
        self.hits += 1
        if entry is not None and entry[0] != self._today and key not in self._added:
            self._added[key] = [self._today, entry[1]]  # refresh its age
        return findings

    def put(self, key: str, findings: list[Finding]) -> None:
        encoded = encode_findings(findings)
        if encoded is not None:
            self._added[key] = [self._today, encoded]

    # -- storage ----------------------------------------------------------
    def save(self) -> None:
        """Write the entries added in this run (see ``_write``). Never raises."""
        if not self._added:
            return
        try:
            os.makedirs(os.path.dirname(self.file), exist_ok=True)
            _mark_directory(self.directory)
            with _locked(self.file + ".lock"):
                self._write()
        except OSError:
            pass  # a read-only or full disk makes the cache useless, not the run

    def _write(self) -> None:
        """Under the lock: merge what is on disk now, drop old entries, replace the file atomically."""
        merged = self._load(self.file)  # a concurrent run may have written since we loaded
        merged.update(self._added)
        oldest = self._today - MAX_AGE_DAYS
        merged = {k: v for k, v in merged.items() if v[0] >= oldest}
        payload = json.dumps(merged, separators=(",", ":"), allow_nan=True).encode()
        header = json.dumps({"magic": MAGIC, "format": FORMAT, "salt": salt(), "length": len(payload),
                             "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=os.path.dirname(self.file))
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(header + b"\n" + payload + b"\n")
            os.replace(temporary, self.file)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        self._entries = merged
        self._added = {}

    @staticmethod
    def _load(file: str) -> dict[str, list[Any]]:
        """The entries of a valid cache file, else {} (missing, corrupt, foreign, other version)."""
        try:
            with open(file, "rb") as handle:
                data = handle.read()
        except OSError:
            return {}
        try:
            newline = data.index(b"\n")
            header = json.loads(data[:newline])
            payload = data[newline + 1:].rstrip(b"\n")
            if not (isinstance(header, dict) and header.get("magic") == MAGIC and header.get("format") == FORMAT
                    and header.get("salt") == salt() and header.get("length") == len(payload)
                    and header.get("sha256") == hashlib.sha256(payload).hexdigest()):
                return {}
            entries = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return {}
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items()
                if isinstance(k, str) and isinstance(v, list) and len(v) == 2 and type(v[0]) is int}


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """An exclusive lock between nanlint processes saving the same cache file (POSIX ``flock``; the lock
    goes away with its process). Without ``fcntl`` the merge is best effort: the last replace wins."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _mark_directory(directory: str) -> None:
    """A ``.gitignore`` and a ``CACHEDIR.TAG`` (backup tools skip it), like other tools' caches."""
    for name, text in ((".gitignore", "# Automatically created by nanlint.\n*\n"),
                       ("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"
                                        "# This file is a cache directory tag created by nanlint.\n")):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            try:
                with open(path, "w", encoding="utf-8") as out:
                    out.write(text)
            except OSError:
                pass


# -- findings <-> JSON ---------------------------------------------------------
_SIMPLE = (str, int, float, bool, type(None))


def plain_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """The part of ``Finding.extra`` that is plain data (strings, numbers, tuples of them).

    ``extra`` is not part of a finding's identity; what is not plain data (a
    syntax-tree node) cannot cross a process boundary or live in a file.
    """
    return {k: v for k, v in extra.items() if isinstance(k, str) and _is_plain(v)}


def _is_plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _SIMPLE):
        return True
    if isinstance(value, (tuple, list)) and depth < 4:
        return all(_is_plain(v, depth + 1) for v in value)
    return False


def encode_findings(findings: list[Finding]) -> Optional[list[Any]]:
    out: list[Any] = []
    for f in findings:
        fix = None
        if f.fix is not None:
            fix = [f.fix.applicability, f.fix.message,
                   [[e.line, e.column, e.end_line, e.end_column, e.content] for e in f.fix.edits]]
        out.append([f.code, f.name, f.message, f.path, f.line, f.column, f.end_line, f.end_column, fix,
                    plain_extra(f.extra), f.confidence])
    return out


def decode_entry(entry: Any) -> Optional[list[Finding]]:
    """The findings of an entry, or None when any field is not what ``encode_findings`` writes."""
    try:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
            return None
        findings = []
        for item in entry[1]:
            code, name, message, path, line, column, end_line, end_column, fix, extra, confidence = item
            if not all(isinstance(x, str) for x in (code, name, message, path, confidence)):
                return None
            if not all(type(x) is int for x in (line, column, end_line, end_column)):
                return None
            decoded_fix = None
            if fix is not None:
                applicability, fix_message, edits = fix
                if not (isinstance(applicability, str) and isinstance(fix_message, str) and isinstance(edits, list)):
                    return None
                made = []
                for e in edits:
                    l1, c1, l2, c2, content = e
                    if not (all(type(x) is int for x in (l1, c1, l2, c2)) and isinstance(content, str)):
                        return None
                    made.append(Edit(l1, c1, l2, c2, content))
                decoded_fix = Fix(applicability, fix_message, tuple(made))
            if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
                return None
            findings.append(Finding(code, name, message, path, line, column, end_line, end_column, decoded_fix,
                                    {k: _tuples(v) for k, v in extra.items()}, confidence=confidence))
        return findings
    except (TypeError, ValueError):
        return None


def _tuples(value: Any) -> Any:
    """JSON has lists where ``extra`` had tuples (``target_span``)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
