"""The result cache: keyed by content, version and settings; a corrupt, foreign or raced cache is never trusted."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanlint import cache as cache_module
from nanlint.cache import Cache, content_hash, decode_entry, encode_findings, entry_key, request_key
from nanlint.finding import Edit, Finding, Fix
from nanlint.rules import ALL_RULES, BY_CODE

ROOT = Path(__file__).resolve().parent.parent
HAZARD = "import torch\n\ndef f(x):\n    return x / x.norm()\n"


def finding(line: int = 4, **extra: object) -> Finding:
    fix = Fix("unsafe", "clamp", (Edit(line, 12, line, 20, "x.norm().clamp_min(1e-6)"),))
    return Finding("NAN101", "divide-by-norm", "division by a norm", "pkg/m.py", line, 12, line, 20, fix,
                   dict(extra))


def key(display: str = "pkg/m.py", data: bytes = HAZARD.encode(), rules=ALL_RULES, precision=None,
        options=()) -> str:
    return entry_key(display, request_key(rules, precision, options), content_hash(data))


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    stored = [finding(target_span=(4, 12, 4, 20), no_fix_reason="why"), finding(line=9)]
    first = Cache(str(tmp_path))
    first.put(key(), stored)
    first.save()
    loaded = Cache(str(tmp_path)).get(key())
    assert loaded == stored
    assert [f.extra for f in loaded] == [f.extra for f in stored]  # extra is not part of ==; check it too
    assert loaded[0].extra["target_span"] == (4, 12, 4, 20)  # a tuple again, not a JSON list
    assert loaded[0].fix == stored[0].fix


def test_empty_result_is_cached(tmp_path: Path) -> None:
    first = Cache(str(tmp_path))
    first.put(key(), [])
    first.save()
    second = Cache(str(tmp_path))
    assert second.get(key()) == []
    assert second.hits == 1


@pytest.mark.parametrize("change", ["content", "path", "rules", "precision", "options"])
def test_key_covers_content_path_and_settings(change: str) -> None:
    base = key()
    other = {
        "content": lambda: key(data=HAZARD.encode() + b"\n"),
        "path": lambda: key(display="pkg/other.py"),
        "rules": lambda: key(rules=[r for r in ALL_RULES if r.code != "NAN101"]),
        "precision": lambda: key(precision=("float16",)),
        "options": lambda: key(options=(("max-grad-norm", 2.0),)),
    }[change]()
    assert other != base


def test_rule_order_and_option_order_do_not_matter() -> None:
    assert request_key(ALL_RULES, None, (("a", 1), ("b", 2))) == \
        request_key(tuple(reversed(ALL_RULES)), None, (("b", 2), ("a", 1)))


def test_another_nanlint_version_or_source_uses_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Cache(str(tmp_path))
    first.put(key(), [finding()])
    first.save()
    monkeypatch.setattr(cache_module, "_salt", "0" * 32)  # what a different version/source/libcst computes
    assert Cache(str(tmp_path)).get(key()) is None


def test_salt_depends_on_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache_module.salt()
    monkeypatch.setattr(cache_module, "_salt", None)
    monkeypatch.setattr(cache_module, "__version__", "999.0")
    assert cache_module.salt() != before


def test_salt_is_remembered_under_the_stat_of_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = cache_module.salt()
    monkeypatch.setattr(cache_module, "RACY_NS", 0)

    def fresh() -> str:  # as a new process would compute it (salt() keeps its value for the process)
        monkeypatch.setattr(cache_module, "_salt", None)
        return cache_module.salt_for(str(tmp_path))

    assert fresh() == real
    stamp_file = tmp_path / cache_module._SUBDIR / cache_module._STAMP_FILE
    (stamp,) = json.loads(stamp_file.read_text())
    stamp_file.write_text(json.dumps({stamp: "a" * 32}))
    assert fresh() == "a" * 32  # read, not recomputed
    monkeypatch.setattr(cache_module, "_stamp_of_sources", lambda: "another stat of the sources")
    assert fresh() == real  # a changed source file: hashed again
    monkeypatch.setattr(cache_module, "_stamp_of_sources", lambda: None)  # a source file changed just now
    stamp_file.unlink()
    assert fresh() == real and not stamp_file.exists()


def test_racy_files_are_not_recorded(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(HAZARD)
    c = Cache(str(tmp_path / "cache"))
    c.record(str(module), module.stat(), content_hash(HAZARD.encode()))  # written just now: not remembered
    assert c.digest_of(str(module), module.stat()) is None
    os.utime(module, ns=(1, 1))  # mtime in 1970; ctime is now, so still racy
    c.record(str(module), module.stat(), content_hash(HAZARD.encode()))
    assert c.digest_of(str(module), module.stat()) is None


def _saved(tmp_path: Path) -> Path:
    first = Cache(str(tmp_path))
    first.put(key(), [finding()])
    first.save()
    return Path(first.file)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "header-only", "wrong-length"])
def test_corrupt_file_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    file = _saved(tmp_path)
    data = file.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "flip": data[:-10] + bytes([data[-10] ^ 0x01]) + data[-9:],
        "garbage": os.urandom(len(data)),
        "empty": b"",
        "header-only": data.split(b"\n")[0],
        "wrong-length": data.replace(b'"length": ', b'"length": 1', 1),
    }[damage]
    file.write_bytes(damaged)
    reread = Cache(str(tmp_path))
    assert reread.get(key()) is None
    reread.put(key(), [finding(line=7)])
    reread.save()
    assert Cache(str(tmp_path)).get(key()) == [finding(line=7)]


def test_foreign_file_is_ignored(tmp_path: Path) -> None:
    file = _saved(tmp_path)
    payload = file.read_bytes().split(b"\n")[1]
    for header in ({"magic": "ruff-cache", "format": cache_module.FORMAT},
                   {"magic": "nanlint-cache", "format": 999},
                   {"magic": "nanlint-cache", "format": cache_module.FORMAT, "salt": "f" * 32}):
        full = dict(header, length=len(payload), blake2b=cache_module.checksum(payload))
        full.setdefault("salt", cache_module.salt())
        file.write_bytes(json.dumps(full).encode() + b"\n" + payload + b"\n")
        assert Cache(str(tmp_path)).get(key()) is None, header


def test_well_formed_file_with_malformed_entries_is_not_trusted(tmp_path: Path) -> None:
    """A valid checksum over bad entries (a bug, or a hand-made file): each bad entry is a miss."""
    good = encode_findings([finding()])
    bad_entries = {
        "a": [1, [["NAN101", "x", "m", "p", "4", 1, 4, 2, None, {}]]],  # a line number as a string
        "b": [1, [["NAN101", "x", "m", "p", 4, 1, 4, 2, ["safe", "m", [[1, 2, 3]]], {}]]],  # short edit
        "c": [1, "not a list"],
        "d": [1, [["too", "short"]]],
        "e": [1, [["NAN101", "x", "m", "p", 4, 1, 4, 2, None, ["extra", "not a dict"]]]],
        "ok": [1, good],
    }
    payload = json.dumps({"entries": bad_entries, "files": {"/x.py": [1, 2, 3, 4, 5, 6, 7]}}).encode()
    header = {"magic": "nanlint-cache", "format": cache_module.FORMAT, "salt": cache_module.salt(),
              "length": len(payload), "blake2b": cache_module.checksum(payload)}
    file = Path(tmp_path, cache_module._SUBDIR, f"{cache_module.salt()}.json")
    file.parent.mkdir(parents=True)
    file.write_bytes(json.dumps(header).encode() + b"\n" + payload + b"\n")
    loaded = Cache(str(tmp_path))
    for name in "abcde":
        assert loaded.get(name) is None, name
    assert loaded.get("ok") == [finding()]
    assert decode_entry({"not": "a list"}) is None
    assert loaded._files == {}  # a file record whose hash is not a string is dropped


def test_concurrent_writers_merge_and_leave_a_valid_file(tmp_path: Path) -> None:
    a, b = Cache(str(tmp_path)), Cache(str(tmp_path))  # both loaded the same (empty) state
    a.put("from-a", [finding(line=1)])
    b.put("from-b", [finding(line=2)])
    a.save()
    b.save()  # b never saw a's entry in memory: it merges what is on disk before replacing
    final = Cache(str(tmp_path))
    assert final.get("from-a") == [finding(line=1)]
    assert final.get("from-b") == [finding(line=2)]


def test_leftover_temporary_file_of_a_dead_writer_is_never_read(tmp_path: Path) -> None:
    file = _saved(tmp_path)
    (file.parent / ".tmp-crashed.json").write_bytes(b'{"magic": "nanlint-cache"}\n{"half wri')
    assert Cache(str(tmp_path)).get(key()) == [finding()]


def _hammer(directory: str, worker: int, rounds: int) -> None:
    for i in range(rounds):
        c = Cache(directory)
        # every read sees a whole file (the old one or the new one), never a torn one
        for j in range(worker):
            got = c.get(f"w{j}-0")
            assert got is None or got == [finding(line=j + 1)]
        c.put(f"w{worker}-{i}", [finding(line=worker + 1)])
        c.save()


def test_many_processes_writing_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    workers = [context.Process(target=_hammer, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    final = Cache(str(tmp_path))
    assert final.get(f"w0-14") == [finding(line=1)]  # each writer's last entry survives the merges
    assert final.get(f"w3-14") == [finding(line=4)]
    assert not list(Path(final.file).parent.glob(".tmp-*"))


def test_unwritable_directory_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    c = Cache(str(blocker))  # the cache directory cannot be created below a file
    c.put(key(), [])
    c.save()  # must not raise
    assert c.get(key()) == []  # still served from memory in this run


def test_directory_is_marked(tmp_path: Path) -> None:
    _saved(tmp_path)
    assert (tmp_path / ".gitignore").read_text().strip().endswith("*")
    assert (tmp_path / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")


def test_old_entries_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Cache(str(tmp_path))
    c.put("old", [])
    c._added["old"][0] -= cache_module.MAX_AGE_DAYS + 1
    c.put("new", [])
    c.save()
    again = Cache(str(tmp_path))
    assert again.get("old") is None and again.get("new") == []


# -- through the command line ----------------------------------------------------------------------
def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NANLINT_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "nanlint", "check", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def project(tmp_path: Path, config: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text(f"[tool.nanlint]\n{config}")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(HAZARD)
    (tmp_path / "src" / "clean.py").write_text("import torch\n\ndef g(x):\n    return x + 1\n")
    return tmp_path


def test_cli_warm_run_equals_cold_run_and_uses_the_cache(tmp_path: Path) -> None:
    root = project(tmp_path)
    cold = run(["src", "--output-format", "json"], root)
    assert (root / ".nanlint_cache" / cache_module._SUBDIR).is_dir()
    warm = run(["src", "--output-format", "json"], root)
    assert cold.returncode == warm.returncode == 1
    assert cold.stdout == warm.stdout
    assert json.loads(warm.stdout)[0]["code"] == "NAN101"


def test_cli_no_cache_and_cache_dir(tmp_path: Path) -> None:
    root = project(tmp_path)
    run(["src", "--no-cache"], root)
    assert not (root / ".nanlint_cache").exists()
    run(["src", "--cache-dir", "elsewhere"], root)
    assert (root / "elsewhere" / cache_module._SUBDIR).is_dir() and not (root / ".nanlint_cache").exists()


def test_cli_cache_dir_from_config_is_relative_to_it(tmp_path: Path) -> None:
    root = project(tmp_path, 'cache-dir = "build/lintcache"\n')
    (root / "sub").mkdir()
    run(["../src"], root / "sub")
    assert (root / "build" / "lintcache" / cache_module._SUBDIR).is_dir()


def test_cli_cache_dir_must_be_a_string(tmp_path: Path) -> None:
    root = project(tmp_path, "cache-dir = 3\n")
    result = run(["src"], root)
    assert result.returncode == 2 and "cache-dir" in result.stderr


def test_cli_modification_time_is_not_the_key(tmp_path: Path) -> None:
    """A touched file still hits; a file edited with its mtime restored misses (content decides)."""
    root = project(tmp_path)
    assert run(["src"], root).returncode == 1
    module = root / "src" / "m.py"
    stat = module.stat()
    os.utime(module, (stat.st_atime + 1000, stat.st_mtime + 1000))
    assert run(["src"], root).returncode == 1
    module.write_text("import torch\n\ndef f(x):\n    return x / (x.norm() + 1e-6)\n")
    os.utime(module, (stat.st_atime, stat.st_mtime))
    fixed = run(["src"], root)
    assert fixed.returncode == 0, fixed.stdout


def test_cli_settings_change_misses(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert run(["src"], root).returncode == 1
    assert run(["src", "--ignore", "NAN101"], root).returncode == 0  # not the cached NAN101 finding


def test_cli_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    root = project(tmp_path)
    run(["src"], root)
    for file in (root / ".nanlint_cache" / cache_module._SUBDIR).glob("*.json"):
        file.write_bytes(b"\x00garbage")
    again = run(["src", "--output-format", "json"], root)
    assert again.returncode == 1 and json.loads(again.stdout)[0]["code"] == "NAN101"
    for file in (root / ".nanlint_cache" / cache_module._SUBDIR).glob("*.json"):
        assert file.read_bytes().startswith(b'{"magic": "nanlint-cache"')


def test_rule_codes_in_key_are_the_enabled_ones() -> None:
    assert request_key([BY_CODE["NAN101"]], None, ()) != request_key([BY_CODE["NAN102"]], None, ())
