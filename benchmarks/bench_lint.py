#!/usr/bin/env python3
"""Benchmark nanlint over a corpus of real PyTorch code, against libcst's bare parse, ruff and TorchFix.

    python benchmarks/bench_lint.py                      # corpus in ./corpus (built if missing)
    python benchmarks/bench_lint.py --corpus /work/corpus --repeat 3
    python benchmarks/bench_lint.py --quick              # the timm slice only
    python benchmarks/bench_lint.py --setup-tools        # first: venvs for ruff and TorchFix under /tmp

Every configuration runs as a separate process, ``--repeat`` times (the expensive
reference rows fewer, see ``--slow-repeat``); the table shows files, lines,
wall seconds (median, min, max), lines per second, the peak RSS of the whole
process tree (sampled every 20 ms: the sum over the main process and its
workers) and of its largest process (``ru_maxrss``), and the ratio to a bare
two-process ``libcst.parse_module`` of the same files, measured in the same run.

Configurations (whole corpus, and the timm slice):

* ``ast.parse`` (1 process) and bare ``libcst.parse_module`` (2 processes): references;
* nanlint *plain*: one process, the whole file parsed, no cache (``NANLINT_SECOND_STAGE=0 --jobs 1
  --no-cache``): the path every other must agree with;
* nanlint *cold*: every default rule, the default ``--jobs`` (one per core), an empty cache;
* nanlint *warm*: the same command again, no file changed (the cache answers);
* nanlint cold without the second-stage screen, and with only the seed rules (levers);
* ruff (``--select ALL`` and its defaults, ``--no-cache``) and TorchFix 0.7.0 (timm slice: it takes
  ~2 minutes there and ~30 on the corpus; ``--torchfix-corpus`` adds the corpus row).

The findings of cold, warm and plain runs are compared (JSON output) and the
table says whether they are identical. Targets (issue 6): cold <= 0.35 x the bare
two-process parse, warm <= 5 % of cold, peak RSS not growing with the number of files.

Then the issue 15 table, measured in the same run for this tree and, with ``--baseline DIR``, another
nanlint source tree (``git archive main nanlint | tar -x -C DIR``): ``nanlint --version`` and ``rules``
start-up, the pre-commit hook's second run with one changed file, a warm timm run interleaved with ruff's
default rules ``--no-cache``, cold over the bare parse (in rounds of a bare parse then each tree's cold run:
the median of the rounds' ratios, which a host whose load drifts between the rows leaves comparable), and the
language server typing 30 keystrokes into a 2,026-line file 100 ms and 50 ms apart (latency p50/p95,
publishes, diagnostics at rest = ``nanlint check``).
``--quick`` (timm only, no TorchFix) takes a few minutes; ``--lean`` drops the lever rows and the plain path.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGES = ("diffusers", "pytorch_lightning", "timm", "transformers")
SEED_RULES = "NAN101,NAN102,NAN201,NAN202,NAN601,NAN602"
TOOLS = Path(tempfile.gettempdir()) / "nanlint-bench"
RUFF_VERSION = "0.17.6"


# -- helpers that run inside the measured processes --------------------------------------------------
def _files(root: str) -> list[str]:
    out = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        out.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".py"))
    return out


def _ast_worker(paths: list[str]) -> int:
    import ast

    for path in paths:
        with open(path, "rb") as handle:
            try:
                ast.parse(handle.read())
            except (SyntaxError, ValueError):
                pass
    return len(paths)


def _libcst_worker(paths: list[str]) -> int:
    import libcst

    for path in paths:
        with open(path, "rb") as handle:
            try:
                libcst.parse_module(handle.read().decode("utf-8"))
            except Exception:
                pass
    return len(paths)


def _parse_all(kind: str, root: str, processes: int) -> None:
    """Parse every file under ``root`` with ``processes`` processes (files dealt largest first)."""
    files = sorted(_files(root), key=lambda p: -os.path.getsize(p))
    work = _ast_worker if kind == "ast" else _libcst_worker
    if processes == 1:
        work(files)
        return
    import multiprocessing

    chunks = [files[i:i + 8] for i in range(0, len(files), 8)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        sum(pool.imap_unordered(work, chunks))


# -- measuring ------------------------------------------------------------------------------------------
def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in KiB."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{current}/task/{current}/children") as handle:
                stack.extend(int(c) for c in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Run:
    seconds: float
    tree_rss_kb: int
    max_rss_kb: int
    returncode: int
    stdout: bytes = b""


def measure(command: list[str], env: Optional[dict[str, str]] = None, cwd: Optional[str] = None,
            keep_stdout: bool = False) -> Run:
    out = tempfile.TemporaryFile()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _tree_rss_kb(process.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    data = b""
    if keep_stdout:
        out.seek(0)
        data = out.read()
    out.close()
    return Run(seconds, peak, usage.ru_maxrss, process.returncode, data)


@dataclass
class Row:
    name: str
    scope: str  # "corpus" | "timm"
    files: int
    lines: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    def cells(self, baseline: Optional[float]) -> list[str]:
        times = [r.seconds for r in self.runs]
        ratio = f"{self.median / baseline:.3f}" if baseline else ""
        return [self.name, str(self.files), f"{self.lines:,}", f"{self.median:.2f}", f"{min(times):.2f}",
                f"{max(times):.2f}", f"{self.lines / self.median:,.0f}",
                f"{max(r.tree_rss_kb for r in self.runs) / 1024:.0f}",
                f"{max(r.max_rss_kb for r in self.runs) / 1024:.0f}", ratio, self.note]


# -- the language server ---------------------------------------------------------------------------------
LSP_FILE = "transformers/transformers/models/wav2vec2/modeling_wav2vec2.py"  # 2,026 lines
LSP_HOT_FUNCTION = "_compute_mask_indices"  # sums, lengths and divisions: every keystroke is analysed with libcst
# Other files, typed into where lsp_typing's default puts the edit: a method of a diffusers pipeline class whose
# `__call__` sets attributes, and timm's vision_transformer.py, whose middle is module-level code (a loop over
# `default_cfgs`): an edit there re-analyses module-level code and the definitions it reaches (nanlint/incremental.py)
LSP_OTHER_FILES = ("diffusers/diffusers/pipelines/stable_diffusion/pipeline_stable_diffusion.py",
                   "timm/timm/models/vision_transformer.py")


class LspSession:
    """A minimal LSP client over stdio that timestamps every message the server sends."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        import threading

        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        self.messages: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            message = json.loads(stream.read(length))
            with self.lock:
                self.messages.append((time.perf_counter(), message))

    def send(self, message: dict) -> float:
        body = json.dumps(message).encode()
        assert self.process.stdin is not None
        sent = time.perf_counter()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()
        return sent

    def notify(self, method: str, params: dict) -> float:
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict, timeout: float = 60.0) -> dict:
        self.next_id += 1
        ident = self.next_id
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == ident, timeout)[1]

    def wait(self, predicate, timeout: float = 60.0) -> tuple[float, dict]:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                for stamp, message in self.messages:
                    if predicate(message):
                        return stamp, message
            time.sleep(0.002)
        raise TimeoutError("no answer from the language server")

    def publishes(self, uri: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(t, m["params"]) for t, m in self.messages
                    if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri]

    def close(self) -> None:
        try:
            self.request("shutdown", {}, timeout=10)
            self.notify("exit", {})
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


def lsp_typing(python: str, env: dict[str, str], work: Path, source: Path, edits: int = 30,
               interval: float = 0.05, settle: float = 1.5, into: Optional[str] = None) -> dict:
    """Open ``source`` in ``nanlint server`` and type ``edits`` keystrokes into one of its functions, one
    every ``interval`` s (the first inserts a line ``_t = 1``, each next appends a digit: the text stays valid);
    wait for the last version's diagnostics, then ``settle`` s for a confirmation. ``into``: the name of the
    function typed into (default: the first line indented eight spaces after the middle of the file, in a
    method or, in a file whose middle is module-level code, in a module-level block).

    A keystroke's latency is the time from sending it to the first publishDiagnostics for its version or a
    later one. Also returns the number of publishes after the document was opened, whether their versions
    increase (no version is published after a newer one), and whether the diagnostics at rest equal
    `nanlint check` on the final text."""
    import ast

    folder = work / "lsp"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    text = source.read_text(encoding="utf-8")
    lines = text.split("\n")
    middle = len(lines) // 2
    indent = "        "
    if into is not None:
        middle = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"def {into}(")) + 1
        indent = " " * (len(lines[middle - 1]) - len(lines[middle - 1].lstrip()) + 4)
    at = next(i for i in range(middle, len(lines)) if lines[i].startswith(indent) and lines[i][len(indent)] != " "
              and _parses("\n".join(lines[:i] + [indent + "_t = 1"] + lines[i:])))
    target.write_text(text, encoding="utf-8")
    uri = target.resolve().as_uri()
    session = LspSession([python, "-m", "nanlint", "server"], env, str(folder))
    try:
        session.request("initialize", {"processId": os.getpid(), "rootUri": folder.resolve().as_uri(),
                                       "capabilities": {"textDocument": {"publishDiagnostics":
                                                                         {"versionSupport": True}}}})
        session.notify("initialized", {})
        session.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                                 "text": text}})
        session.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                     and m["params"].get("version") == 1, timeout=120)
        opened = len(session.publishes(uri))
        sent: list[float] = []
        current = lines[:]
        for k in range(edits):
            if k == 0:
                change = {"range": {"start": {"line": at, "character": 0}, "end": {"line": at, "character": 0}},
                          "text": indent + "_t = 1\n"}
                current.insert(at, indent + "_t = 1")
            else:
                column = len(current[at])
                change = {"range": {"start": {"line": at, "character": column},
                                    "end": {"line": at, "character": column}}, "text": str(k % 10)}
                current[at] += str(k % 10)
            sent.append(session.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": k + 2},
                                                                  "contentChanges": [change]}))
            time.sleep(interval)
        final = "\n".join(current)
        ast.parse(final)
        session.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"  # a slow server drains its queue
                     and (m["params"].get("version") or 0) >= edits + 1, timeout=600)
        time.sleep(settle)  # a confirmation may follow
        publishes = session.publishes(uri)[opened:]
        latencies = []
        for k, stamp in enumerate(sent):
            answered = [t for t, p in publishes if (p.get("version") or 0) >= k + 2 and t >= stamp]
            latencies.append(min(answered) - stamp if answered else float("inf"))
        at_rest = publishes[-1][1]["diagnostics"] if publishes else None
        versions = [p.get("version") or 0 for _, p in publishes]
    finally:
        session.close()
    target.write_text(final, encoding="utf-8")
    check = subprocess.run([python, "-m", "nanlint", "check", "--exit-zero", "--no-cache", "--output-format", "json",
                            str(target)], env=env, cwd=str(folder), capture_output=True, text=True)
    expected = sorted((f["code"], f["line"], f["column"]) for f in json.loads(check.stdout or "[]"))
    shown = sorted((d["code"], d["range"]["start"]["line"] + 1, None) for d in at_rest or [])
    same = [(c, l) for c, l, _ in shown] == [(c, l) for c, l, _ in expected]
    ordered = sorted(latencies)
    return {"p50": statistics.median(latencies), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "publishes": len(publishes), "edits": edits, "latencies": latencies,
            "in_order": all(a <= b for a, b in zip(versions, versions[1:])), "interval": interval, "same_as_check": same,
            "findings": len(expected)}


def _parses(text: str) -> bool:
    import ast

    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


# -- start-up, pre-commit ------------------------------------------------------------------------------------
PRECOMMIT_FILES = ("timm/timm/layers/attention.py", "timm/timm/layers/norm.py", "timm/timm/layers/mlp.py",
                   "timm/timm/layers/drop.py", "timm/timm/layers/pos_embed.py", "timm/timm/models/resnet.py",
                   "timm/timm/models/vision_transformer.py", "timm/timm/models/convnext.py")
PRECOMMIT_CHANGED = "timm/timm/layers/attention.py"  # a file the screens let through: it is analysed again


def precommit_second_runs(python: str, env: dict[str, str], work: Path, corpus: Path, repeat: int) -> list[Run]:
    """The pre-commit hook's command (`nanlint --force-exclude FILES`, default cache in the project) on eight
    staged files, run once to fill the cache; then ``repeat`` times: one file changed, the hook run again."""
    project = work / "precommit"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.nanlint]\n", encoding="utf-8")
    names = []
    for relative in PRECOMMIT_FILES:
        target = project / Path(relative).name
        shutil.copyfile(corpus / relative, target)
        names.append(target.name)
    command = [python, "-m", "nanlint", "--force-exclude", "--exit-zero", *names]
    measure(command, env, str(project))
    changed = project / Path(PRECOMMIT_CHANGED).name
    original = changed.read_text(encoding="utf-8")
    runs = []
    for k in range(repeat):
        changed.write_text(original + f"\n# edit {k}\n", encoding="utf-8")
        runs.append(measure(command, env, str(project)))
    return runs


def startup_runs(command: list[str], env: dict[str, str], cwd: str, repeat: int) -> list[Run]:
    return [measure(command, env, cwd) for _ in range(repeat)]


# -- the corpus ----------------------------------------------------------------------------------------
def corpus_counts(corpus: Path) -> tuple[int, int]:
    files = lines = 0
    for package in PACKAGES:
        for path in _files(str(corpus / package)):
            files += 1
            with open(path, "rb") as handle:
                lines += handle.read().count(b"\n")
    return files, lines


def ensure_corpus(corpus: Path, rebuild: bool) -> None:
    complete = (corpus / "MANIFEST.tsv").is_file() and all((corpus / p).is_dir() for p in PACKAGES)
    if complete and not rebuild:
        return
    script = HERE / "make_corpus.sh"
    print(f"building the corpus in {corpus} with {script} (downloads four pinned wheels)...", flush=True)
    subprocess.run(["bash", str(script), str(corpus)], check=True)


def setup_tools() -> None:
    """Separate virtual environments: TorchFix (torch pinned first) and ruff, both pinned."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    steps = [
        ("torchfix-venv", ["torch==2.13.0"], ["torchfix==0.7.0"]),
        ("ruff-venv", [f"ruff=={RUFF_VERSION}"], []),
    ]
    for name, first, second in steps:
        venv = TOOLS / name
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for packages in (first, second):
            if packages:
                subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)


# -- the benchmark -------------------------------------------------------------------------------------
def _byte_compile(tree: Path) -> None:
    """Write the ``.pyc`` files of a copied nanlint, as ``pip install`` does: with ``PYTHONDONTWRITEBYTECODE`` set
    (or a read-only tree) every run would otherwise compile nanlint's sources again (~15 ms of a start-up)."""
    import compileall

    compileall.compile_dir(str(tree), quiet=1, workers=1)


def nanlint_command(target: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "nanlint", "check", "--isolated", "--exit-zero", "--output-format", "json",
            str(target), *options]


def findings_of(run: Run) -> list[dict]:
    return sorted(json.loads(run.stdout.decode() or "[]"), key=lambda f: (f["path"], f["line"], f["column"],
                                                                          f["code"], f["message"]))


def dump(path: Optional[Path], rows: list[Row], verdicts: list[str]) -> None:
    if path is not None:
        path.write_text(json.dumps({"rows": [{
            "name": r.name, "scope": r.scope, "files": r.files, "lines": r.lines,
            "seconds": [x.seconds for x in r.runs], "tree_rss_kb": [x.tree_rss_kb for x in r.runs],
            "max_rss_kb": [x.max_rss_kb for x in r.runs], "note": r.note} for r in rows],
            "verdicts": verdicts}, indent=1))


def summary(rows: list[Row]) -> None:
    """The whole-corpus comparison (issue 15): nanlint cold and warm, ruff --select ALL, the bare libcst parse,
    ast and TorchFix, from the corpus rows of this run."""
    corpus_rows = [r for r in rows if r.scope == "corpus"]
    if not corpus_rows:
        return

    def find(start: str) -> Optional[Row]:
        return next((r for r in corpus_rows if r.name.startswith(start)), None)

    picked = [find("nanlint cold (default"), find("nanlint warm"), find(f"ruff {RUFF_VERSION} --select ALL"),
              find("libcst.parse_module"), find("ast.parse"), find("TorchFix")]
    bare, cold = find("libcst.parse_module"), find("nanlint cold (default")
    print("\n### whole corpus, one run\n")
    print("| tool | files | lines | median s | lines/s | x bare libcst (2 proc) | x nanlint cold |")
    print("|---|---|---|---|---|---|---|")
    for r in picked:
        if r is None:
            continue
        over_bare = f"{r.median / bare.median:.3f}" if bare else ""
        over_cold = f"{r.median / cold.median:.3f}" if cold else ""
        print(f"| {r.name} | {r.files} | {r.lines:,} | {r.median:.2f} | {r.lines / r.median:,.0f} | {over_bare} "
              f"| {over_cold} |")


def issue15_rows(args: argparse.Namespace, trees: dict[str, dict[str, str]], work: Path, corpus: Path,
                 rows: list[Row], baselines: dict[str, float]) -> list[tuple[str, dict[str, str], str]]:
    """Start-up, pre-commit, warm-vs-ruff and LSP, for this tree and the baseline, measured in this run."""
    out: list[tuple[str, dict[str, str], str]] = []
    timm = corpus / "timm"
    repeat = max(args.repeat, 5)

    def med(runs: list[Run]) -> float:
        return statistics.median(r.seconds for r in runs)

    python = startup_runs([sys.executable, "-c", "pass"], trees["this tree"], str(work), repeat)
    out.append(("`python -c pass` (reference)", {t: f"{med(python):.3f} s" for t in trees}, ""))
    version = {t: med(startup_runs([sys.executable, "-m", "nanlint", "--version"], e, str(work), repeat))
               for t, e in trees.items()}
    out.append(("`nanlint --version`", {t: f"{v:.3f} s" for t, v in version.items()}, "<= 0.08 s"))
    rules = {t: med(startup_runs([sys.executable, "-m", "nanlint", "rules"], e, str(work), repeat))
             for t, e in trees.items()}
    out.append(("`nanlint rules`", {t: f"{v:.3f} s" for t, v in rules.items()}, ""))
    for what, code in (("libcst", "import libcst"), ("libcst, the rules and the analysis", "import nanlint.engine")):
        floor = {t: med(startup_runs([sys.executable, "-c", code], e, str(work), repeat)) for t, e in trees.items()}
        out.append((f"`python -c '{code}'` ({what}: what analysing one file imports)",
                    {t: f"{v:.3f} s" for t, v in floor.items()}, ""))
    precommit = {t: med(precommit_second_runs(sys.executable, e, work / t.replace(" ", "-"), corpus, repeat))
                 for t, e in trees.items()}
    out.append((f"pre-commit hook, second run, 1 of {len(PRECOMMIT_FILES)} files changed",
                {t: f"{v:.3f} s" for t, v in precommit.items()}, "<= 0.2 s"))
    ruff_default = next((r for r in rows if r.scope == "timm" and "(default rules)" in r.name), None)
    if ruff_default is not None:
        warm = {}
        for tree, environ in trees.items():
            cache = work / f"warm-{tree.replace(' ', '-')}"
            command = nanlint_command(timm, "--cache-dir", str(cache))
            measure(command, environ, str(work))  # fills the cache
            runs, ruff_runs = [], []
            for _ in range(repeat):  # interleaved: both see the same load
                runs.append(measure(command, environ, str(work)))
                ruff_runs.append(measure([args.ruff, "check", "--isolated", "--no-cache", "--exit-zero", "--quiet",
                                          str(timm)], environ, str(work)))
            warm[tree] = f"{med(runs):.3f} s / {med(ruff_runs):.3f} s = {med(runs) / med(ruff_runs):.2f} x"
        out.append(("warm timm / ruff default `--no-cache` cold (interleaved)", warm, "<= 0.25 x"))
    if "timm" in baselines:  # each round: a bare parse, then each tree's cold run, so that all see the same load
        colds: dict[str, list[Run]] = {t: [] for t in trees}
        bares: list[Run] = []
        bare_parse = [sys.executable, str(Path(__file__).resolve()), "--_parse", "libcst", str(timm), "2"]
        for _ in range(args.repeat):
            bares.append(measure(bare_parse, trees["this tree"], str(work)))
            for tree, environ in trees.items():
                colds[tree].append(measure(nanlint_command(timm, "--no-cache"), environ, str(work)))
        out.append(("cold timm / bare 2-process libcst parse (paired: each round a bare parse, then each tree's cold "
                    "run; the median of the rounds' ratios)",
                    {t: f"{statistics.median(c.seconds / b.seconds for c, b in zip(r, bares)):.3f} x "
                        f"(medians {med(r):.2f} s / {med(bares):.2f} s; rounds "
                        f"{min(c.seconds / b.seconds for c, b in zip(r, bares)):.3f}-"
                        f"{max(c.seconds / b.seconds for c, b in zip(r, bares)):.3f})"
                     for t, r in colds.items()}, "<= 0.35 x"))
    if not args.no_lsp:  # typing into a method no rule can fire in, then into a function that must be analysed
        typing = [(LSP_FILE, interval, into) for interval, into in (
            (0.1, None), (0.05, None), (0.015, None), (0.05, LSP_HOT_FUNCTION), (0.015, LSP_HOT_FUNCTION))]
        for file, interval, into in typing + [(other, 0.05, None) for other in LSP_OTHER_FILES]:
            lsp = {}
            for tree, environ in trees.items():
                found = lsp_typing(sys.executable, environ,
                                   work / f"lsp-{tree.replace(' ', '-')}-{Path(file).stem}-{interval}-{into}",
                                   corpus / file, interval=interval, into=into)
                lsp[tree] = (f"p50 {1000 * found['p50']:.0f} ms, p95 {1000 * found['p95']:.0f} ms, "
                             f"{found['publishes']} publishes; at rest = check: {'yes' if found['same_as_check'] else 'NO'}"
                             f"; in order: {'yes' if found['in_order'] else 'NO'}")
            where = f", into `{into}`" if into else ""
            size = f"{len((corpus / file).read_text(encoding='utf-8').splitlines()):,} lines"
            out.append((f"LSP, {Path(file).name} ({size}), 30 keystrokes {1000 * interval:.0f} ms apart{where}",
                        lsp, "p95 <= 100 ms; no version published after a newer one"))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("NANLINT_CORPUS", REPO / "corpus")))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the corpus even if it exists")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fast configuration")
    parser.add_argument("--slow-repeat", type=int, default=1,
                        help="runs of the slow references (plain path, no second stage, TorchFix)")
    parser.add_argument("--jobs", type=int, default=None, help="nanlint --jobs (default: nanlint's own default)")
    parser.add_argument("--quick", action="store_true",
                        help="only the timm slice, one run of each slow row, no TorchFix (about two minutes)")
    parser.add_argument("--setup-tools", action="store_true", help="create the ruff and TorchFix venvs first")
    parser.add_argument("--ruff", default=str(TOOLS / "ruff-venv" / "bin" / "ruff"))
    parser.add_argument("--torchfix", default=str(TOOLS / "torchfix-venv" / "bin" / "torchfix"))
    parser.add_argument("--torchfix-corpus", action="store_true", help="also run TorchFix on the whole corpus")
    parser.add_argument("--json", type=Path, help="write the raw measurements here")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a nanlint source tree (the folder holding nanlint/) to measure the start-up, pre-commit, "
                             "warm and LSP rows of as well, in the same run (e.g. `git archive main | tar -x -C DIR`)")
    parser.add_argument("--no-lsp", action="store_true", help="skip the language-server rows")
    parser.add_argument("--lean", action="store_true",
                        help="skip the lever rows (seed rules, no second stage) and the plain path (then only cold "
                             "and warm findings are compared)")
    parser.add_argument("--_parse", nargs=3, metavar=("KIND", "ROOT", "PROCESSES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._parse:
        _parse_all(args._parse[0], args._parse[1], int(args._parse[2]))
        return 0
    if args.setup_tools:
        setup_tools()
    corpus = args.corpus.resolve()
    ensure_corpus(corpus, args.rebuild)
    work = Path(tempfile.mkdtemp(prefix="nanlint-bench-"))
    # Every run uses one snapshot of nanlint: an edit to the tree mid-benchmark would change the program
    # measured and (the cache is salted with nanlint's source) turn the warm runs into cold ones.
    shutil.copytree(REPO / "nanlint", work / "snapshot" / "nanlint",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _byte_compile(work / "snapshot")
    env = dict(os.environ, PYTHONPATH=str(work / "snapshot") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NANLINT_CACHE_DIR", None)
    env.pop("NANLINT_SECOND_STAGE", None)
    plain_env = dict(env, NANLINT_SECOND_STAGE="0")
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    scopes = [("timm", corpus / "timm")] if args.quick else [("corpus", corpus), ("timm", corpus / "timm")]
    if args.quick:
        args.torchfix = ""
    trees = {"this tree": env}
    if args.baseline is not None:
        shutil.copytree(args.baseline.resolve() / "nanlint", work / "baseline" / "nanlint",
                        ignore=shutil.ignore_patterns("__pycache__"))
        _byte_compile(work / "baseline")
        trees["baseline"] = dict(env, PYTHONPATH=str(work / "baseline") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows: list[Row] = []
    verdicts: list[str] = []
    baselines: dict[str, float] = {}
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; load average "
          f"{os.getloadavg()[0]:.1f} at start", flush=True)
    for scope, target in scopes:
        if scope == "corpus":
            files, lines = corpus_counts(corpus)
        else:
            files = len(_files(str(target)))
            lines = sum(open(p, "rb").read().count(b"\n") for p in _files(str(target)))

        def row(name: str, command: list[str], repeat: int, environ: Optional[dict] = None, note: str = "",
                before=None, keep: bool = False) -> Row:
            result = Row(name, scope, files, lines, note=note)
            for _ in range(repeat):
                if before is not None:
                    before()
                run = measure(command, environ or env, str(work), keep_stdout=keep)
                if run.returncode not in (0, 1):
                    result.note = (result.note + f" exit {run.returncode}").strip()
                result.runs.append(run)
            rows.append(result)
            print(f"  {scope:6s} {name:50s} {result.median:8.2f} s", flush=True)
            dump(args.json, rows, verdicts)
            return result

        cache = work / f"cache-{scope}"
        clear = lambda: shutil.rmtree(cache, ignore_errors=True)  # noqa: E731
        me = [sys.executable, str(Path(__file__).resolve()), "--_parse"]
        bare = row("libcst.parse_module, 2 processes", [*me, "libcst", str(target), "2"], args.repeat)
        baselines[scope] = bare.median
        row("ast.parse, 1 process", [*me, "ast", str(target), "1"], args.repeat)
        cold = row("nanlint cold (default rules, cache empty)",
                   nanlint_command(target, "--cache-dir", str(cache), *jobs), args.repeat, before=clear, keep=True)
        warm = row("nanlint warm (no file changed)", nanlint_command(target, "--cache-dir", str(cache), *jobs),
                   args.repeat, keep=True)
        if not args.lean:
            row("nanlint cold, seed rules only",
                nanlint_command(target, "--no-cache", "--select", SEED_RULES, *jobs), args.repeat,
                note="screens tightened (NAN1/2/6 seed)")
            row("nanlint cold, seed rules, no second-stage screen",
                nanlint_command(target, "--no-cache", "--select", SEED_RULES, *jobs), args.slow_repeat, plain_env)
            row("nanlint cold, no second-stage screen", nanlint_command(target, "--no-cache", *jobs),
                args.slow_repeat, plain_env)
            plain = row("nanlint plain (1 process, whole files, no cache)",
                        nanlint_command(target, "--no-cache", "--jobs", "1"), args.slow_repeat, plain_env, keep=True)
            reference = findings_of(plain.runs[0])
            compared = "cold, warm and plain"
        else:
            reference = findings_of(cold.runs[0])
            compared = "cold and warm"
        same = all(findings_of(r) == reference for r in cold.runs + warm.runs)
        verdicts.append(f"{scope}: findings of {compared} runs identical: {'yes' if same else 'NO'} "
                        f"({len(reference)} findings)")
        if Path(args.ruff).exists():
            row(f"ruff {RUFF_VERSION} --select ALL --no-cache",
                [args.ruff, "check", "--isolated", "--select", "ALL", "--no-cache", "--exit-zero", "--quiet",
                 str(target)], args.repeat)
            row(f"ruff {RUFF_VERSION} (default rules) --no-cache",
                [args.ruff, "check", "--isolated", "--no-cache", "--exit-zero", "--quiet", str(target)], args.repeat)
        if args.torchfix and Path(args.torchfix).exists() and (scope == "timm" or args.torchfix_corpus):
            row("TorchFix 0.7.0 (default rules, all cores)", [args.torchfix, str(target)], args.slow_repeat)
        verdicts.append(f"{scope}: cold / bare 2-process parse = {cold.median / bare.median:.3f} (target <= 0.35); "
                        f"warm / cold = {warm.median / cold.median:.1%} (target <= 5 %)")
    speed = issue15_rows(args, trees, work, corpus, rows, baselines)
    header = ["configuration", "files", "lines", "median s", "min s", "max s", "lines/s", "peak RSS tree MiB",
              "largest process MiB", "x bare libcst (2 proc)", "note"]
    for scope in dict.fromkeys(r.scope for r in rows):
        print(f"\n### {scope}\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            if r.scope == scope:
                print("| " + " | ".join(r.cells(baselines.get(scope))) + " |")
    summary(rows)
    colds = [r for r in rows if r.name.startswith("nanlint cold (")]
    verdicts.append("peak RSS of a cold run (process tree): " + ", ".join(
        f"{max(x.tree_rss_kb for x in r.runs) / 1024:.0f} MiB on {r.scope} ({r.files} files)" for r in colds))
    print()
    for line in verdicts:
        print(line)
    print("\n### issue 15 targets (one run)\n")
    print("| measure | " + " | ".join(trees) + " | target |")
    print("|---|" + "---|" * len(trees) + "---|")
    for name, values, target in speed:
        print(f"| {name} | " + " | ".join(values.get(tree, "") for tree in trees) + f" | {target} |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    dump(args.json, rows, verdicts)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
