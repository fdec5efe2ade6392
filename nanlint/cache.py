"""A content-addressed cache of lint results in ``.nanlint_cache/``.

An entry is found by a key made of the file's bytes (BLAKE2b), the path it is
reported under, and the effective request (the enabled rules, the declared
precision, the rule options). Every entry of one cache file shares a *salt*: the
nanlint version, a hash of nanlint's own source files, the Python version and the
libcst version. An edited file has new bytes and misses.

A file's ``stat`` only spares reading it; its bytes decide:

* *file records*: the cache remembers, for each file it hashed, its
  ``stat`` (device, inode, size, ``mtime_ns``, ``ctime_ns``) and the BLAKE2b
  of its bytes. A file whose ``stat`` is unchanged is not read or hashed again
  (a warm run stats its files and reads none). Any change of the five fields
  (every write changes ``ctime``, which no tool can set back; a fresh CI checkout
  has new ones) and the file is read and hashed. A file changed in the last
  ``RACY_NS`` before it was looked at is never recorded (git's "racily clean"
  rule: a second write in the same timestamp tick would keep its ``stat``).
  Not on Windows, where ``st_ctime`` is the creation time;
* the salt's hash of nanlint's source is remembered the same way
  (``<dir>/v2/sources.stamp``, keyed by the ``stat`` of every source file).

The cache is never trusted:

* one file per salt, ``<dir>/v2/<salt>.json``: a header line (magic, format,
  salt, length and BLAKE2b of the payload) and one JSON payload line (the
  entries and the file records). Any mismatch (a corrupt or truncated file,
  another tool's file, another nanlint) and the file is ignored and rebuilt; it
  is JSON, never pickle, so reading it cannot run code;
* every entry and record is checked field by field when it is used; a malformed
  one is a miss;
* writes go to a temporary file in the same directory and replace the cache file
  atomically (``os.replace``), under an exclusive ``flock`` on ``<salt>.json.lock``
  that serialises concurrent writers: each merges what is on disk first, so no
  writer's entries are lost. A reader takes no lock and sees the old file or the
  new one, never a mix (where ``fcntl`` is missing the last replace wins).

Results with an internal error (NAN999) are not stored, so a crash is retried.
Entries and records unused for ``MAX_AGE_DAYS`` are dropped when the file is written.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any, Iterable, Iterator, Optional

try:  # hashlib's blake2b itself; importing hashlib also loads OpenSSL (2-3 ms of a 0.1 s warm run)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without its own blake2
    from hashlib import blake2b

from . import __version__
from .finding import Edit, Finding, Fix

CACHE_DIR_NAME = ".nanlint_cache"
FORMAT = 2
MAGIC = "nanlint-cache"
MAX_AGE_DAYS = 30
RACY_NS = 2_000_000_000  # a stat this close to the moment it was taken is not remembered (see the docstring)
# Windows' st_ctime is the creation time, which a write does not change: there only the bytes are trusted.
STAT_RECORDS = os.name != "nt"
_SUBDIR = f"v{FORMAT}"
_STAMP_FILE = "sources.stamp"  # JSON; not *.json, the name of cache files

_salt: Optional[str] = None


def _source_files() -> list[str]:
    """nanlint's own ``.py`` files, sorted, as paths relative to the package (``/``-separated)."""
    package = os.path.dirname(os.path.realpath(__file__))
    found: list[str] = []
    stack = [""]
    while stack:
        relative = stack.pop()
        with os.scandir(os.path.join(package, relative)) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(name)
                elif entry.name.endswith(".py"):
                    found.append(name)
    return sorted(found)


def salt() -> str:
    """What every entry of one cache file shares: nanlint's version and code, Python, libcst."""
    global _salt
    if _salt is None:
        digest = blake2b(digest_size=16)
        package = os.path.dirname(os.path.realpath(__file__))
        for relative in _source_files():
            digest.update(relative.encode())
            digest.update(b"\0")
            with open(os.path.join(package, relative), "rb") as handle:
                digest.update(handle.read())
            digest.update(b"\0")
        digest.update(f"{__version__}|{sys.implementation.name}|{sys.version}|{_libcst_version()}".encode())
        _salt = digest.hexdigest()
    return _salt


def _stamp_of_sources() -> Optional[str]:
    """A digest of the ``stat`` of nanlint's source files, the versions and libcst's (see :func:`salt`); None
    when a source file changed within ``RACY_NS`` (its stat cannot vouch for its bytes yet)."""
    if not STAT_RECORDS:
        return None
    package = os.path.dirname(os.path.realpath(__file__))
    now = time.time_ns()
    parts = [f"{__version__}|{sys.implementation.name}|{sys.version}|{_libcst_version()}"]
    for relative in _source_files():
        st = os.stat(os.path.join(package, relative))
        if now - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
            return None
        parts.append(f"{relative}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}")
    return blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


def salt_for(directory: str) -> str:
    """:func:`salt`, remembered in ``directory`` under the ``stat`` of the source files: a run whose sources are
    unchanged reads one small file instead of hashing nanlint's ~1 MB of source (8 ms)."""
    if _salt is not None:
        return _salt
    try:
        stamp = _stamp_of_sources()
    except OSError:
        stamp = None
    file = os.path.join(directory, _SUBDIR, _STAMP_FILE)
    if stamp is not None:
        try:
            with open(file, "rb") as handle:
                remembered = json.loads(handle.read())
            value = remembered.get(stamp) if isinstance(remembered, dict) else None
            if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
                return value
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            pass
    value = salt()
    if stamp is not None:
        try:
            os.makedirs(os.path.dirname(file), exist_ok=True)
            _mark_directory(directory)
            _replace(file, json.dumps({stamp: value}).encode())
        except OSError:
            pass
    return value


def _libcst_version() -> str:
    """libcst's version without importing libcst (0.25 s) or importlib.metadata (20 ms): the bytes of its
    generated ``_version.py``; the installed distribution's metadata where that file is missing."""
    import importlib.util

    spec = importlib.util.find_spec("libcst")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            with open(os.path.join(folder, "_version.py"), "rb") as handle:
                return blake2b(handle.read(), digest_size=8).hexdigest()
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
    return blake2b(text.encode(), digest_size=16).hexdigest()


def content_hash(data: bytes) -> str:
    return blake2b(data, digest_size=16).hexdigest()


def entry_key(display: str, settings_key: str, digest: str) -> str:
    return blake2b(f"{display}\0{settings_key}\0{digest}".encode(), digest_size=16).hexdigest()


def checksum(payload: bytes) -> str:
    """The header's checksum of the payload."""
    return blake2b(payload, digest_size=32).hexdigest()


def file_signature(st: os.stat_result) -> list[int]:
    """What a file record compares: device, inode, size, mtime_ns, ctime_ns."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class Cache:
    """The entries and file records of one salt: load once, look up and add during a run, ``save`` at the end."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.salt = salt_for(directory)
        self.file = os.path.join(directory, _SUBDIR, f"{self.salt}.json")
        self._today = int(time.time() // 86400)
        self._entries, self._files = self._load(self.file, self.salt)
        self._added: dict[str, list[Any]] = {}
        self._added_files: dict[str, list[Any]] = {}
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

    def digest_of(self, path: str, st: os.stat_result) -> Optional[str]:
        """The content hash recorded for the file at ``path`` (absolute) if its ``stat`` is the recorded one."""
        record = self._added_files.get(path) or self._files.get(path)
        if record is None or record[1:6] != file_signature(st):
            return None
        if record[0] != self._today and path not in self._added_files:
            self._added_files[path] = [self._today, *record[1:]]  # refresh its age
        return record[6]  # type: ignore[no-any-return]  # checked by _load

    def record(self, path: str, st: os.stat_result, digest: str) -> None:
        """Remember that the file at ``path`` (absolute) with this ``stat`` hashed to ``digest``; not while it is
        racy (changed within ``RACY_NS``: a second write in the same tick could keep its ``stat``)."""
        if STAT_RECORDS and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= RACY_NS:
            self._added_files[path] = [self._today, *file_signature(st), digest]

    # -- storage ----------------------------------------------------------
    def save(self) -> None:
        """Write the entries added in this run (see ``_write``). Never raises."""
        if not self._added and not self._added_files:
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
        entries, files = self._load(self.file, self.salt)  # a concurrent run may have written since we loaded
        entries.update(self._added)
        files.update(self._added_files)
        oldest = self._today - MAX_AGE_DAYS
        entries = {k: v for k, v in entries.items() if v[0] >= oldest}
        files = {k: v for k, v in files.items() if v[0] >= oldest}
        payload = json.dumps({"entries": entries, "files": files}, separators=(",", ":"), allow_nan=True).encode()
        header = json.dumps({"magic": MAGIC, "format": FORMAT, "salt": self.salt, "length": len(payload),
                             "blake2b": checksum(payload)}).encode()
        _replace(self.file, header + b"\n" + payload + b"\n")
        self._entries, self._files = entries, files
        self._added, self._added_files = {}, {}

    @staticmethod
    def _load(file: str, expected_salt: str) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """The entries and file records of a valid cache file, else empty (missing, corrupt, foreign, other
        version)."""
        try:
            with open(file, "rb") as handle:
                data = handle.read()
        except OSError:
            return {}, {}
        try:
            newline = data.index(b"\n")
            header = json.loads(data[:newline])
            payload = data[newline + 1:].rstrip(b"\n")
            if not (isinstance(header, dict) and header.get("magic") == MAGIC and header.get("format") == FORMAT
                    and header.get("salt") == expected_salt and header.get("length") == len(payload)
                    and header.get("blake2b") == checksum(payload)):
                return {}, {}
            loaded = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return {}, {}
        if not isinstance(loaded, dict):
            return {}, {}
        entries, files = loaded.get("entries"), loaded.get("files")
        entries = {k: v for k, v in entries.items()
                   if isinstance(k, str) and isinstance(v, list) and len(v) == 2 and type(v[0]) is int
                   } if isinstance(entries, dict) else {}
        files = {k: v for k, v in files.items()
                 if isinstance(k, str) and isinstance(v, list) and len(v) == 7
                 and all(type(x) is int for x in v[:6]) and isinstance(v[6], str)} if isinstance(files, dict) else {}
        return entries, files


def _replace(file: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``file`` and rename it over ``file`` (atomic)."""
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=os.path.dirname(file))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, file)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


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
