"""Issue 16 point 3: notebooks. The code cells are linted, positions name the cell in every format, magics and
shell lines are skipped, `--fix` writes valid notebook JSON that keeps outputs and metadata, and the pre-commit
hook (run by the real `pre-commit`) takes notebooks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_cli import run

CELLS = [
    {"cell_type": "markdown", "metadata": {}, "source": ["# A notebook\n", "x / x.norm() in markdown is text\n"]},
    {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["setup"]}, "outputs": [],
     "source": ["%matplotlib inline\n", "import torch\n", "import torch.nn.functional as F\n", "!pip install einops"]},
    {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": ["def unit(x):\n", "    return x / x.norm()\n"],
     "outputs": [{"output_type": "stream", "name": "stdout", "text": ["kept\n"]}]},
    {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [],
     "source": ["%%bash\n", "echo 'x / x.norm()'\n"]},
    {"cell_type": "code", "execution_count": None, "metadata": {"collapsed": True}, "outputs": [],
     "source": ["def nll(x):\n", "    files = !ls\n", "    x?\n", "    return -torch.log(F.softmax(x, dim=-1))"]},
]


def notebook(tmp_path: Path, cells=CELLS) -> Path:
    path = tmp_path / "nb.ipynb"
    data = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def test_code_cells_are_linted_with_cell_positions_in_every_format(tmp_path: Path) -> None:
    notebook(tmp_path)
    text = run(["--no-cache", "nb.ipynb"], tmp_path)
    assert text.exit_code == 1
    assert [line.split(" ")[0:2] for line in text.output.splitlines()[:-1]] == [
        ["nb.ipynb:cell", "2:2:12:"], ["nb.ipynb:cell", "4:4:13:"]]
    assert text.output.splitlines()[0].startswith("nb.ipynb:cell 2:2:12: NAN101 ")

    data = json.loads(run(["--no-cache", "--output-format", "json", "nb.ipynb"], tmp_path).output)
    assert [(d["code"], d["cell"], d["line"], d["column"]) for d in data] == [("NAN101", 2, 2, 12),
                                                                              ("NAN301", 4, 4, 13)]
    github = run(["--no-cache", "--output-format", "github", "nb.ipynb"], tmp_path).output.splitlines()
    assert github[0].startswith("::error file=nb.ipynb,title=NAN101 divide-by-norm::cell 2:2:12: division by")
    sarif = json.loads(run(["--no-cache", "--output-format", "sarif", "nb.ipynb"], tmp_path).output)
    result = sarif["runs"][0]["results"][0]
    assert result["message"]["text"].startswith("nb.ipynb:cell 2:2:12: division by")
    assert result["properties"]["cell"] == 2
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
    # a directory walk finds notebooks too
    assert "nb.ipynb:cell 2:2:12" in run(["--no-cache", "."], tmp_path).output


def test_magics_do_not_break_the_cell_and_a_cell_magic_cell_is_skipped(tmp_path: Path) -> None:
    notebook(tmp_path)
    data = json.loads(run(["--no-cache", "--output-format", "json", "nb.ipynb"], tmp_path).output)
    assert all(d["code"] != "NAN000" for d in data)  # `!ls`, `x?`, `%matplotlib` parse
    assert all(d["cell"] != 3 for d in data)  # the %%bash cell is not Python


def test_fix_writes_a_valid_notebook_that_keeps_outputs_and_metadata(tmp_path: Path) -> None:
    path = notebook(tmp_path)
    before = json.loads(path.read_text(encoding="utf-8"))
    result = run(["--no-cache", "--fix", "nb.ipynb"], tmp_path)
    assert "1 fixed, 1 remaining" in result.output
    assert "nb.ipynb:cell 2:2:12: NAN101" in result.output
    after = json.loads(path.read_text(encoding="utf-8"))
    assert after["cells"][4]["source"] == ["def nll(x):\n", "    files = !ls\n", "    x?\n",
                                           "    return -F.log_softmax(x, dim=-1)"]
    for i in (0, 1, 2, 3):
        assert after["cells"][i] == before["cells"][i]  # magics, outputs, tags, markdown: unchanged
    for key in ("metadata", "nbformat", "nbformat_minor"):
        assert after[key] == before[key]
    assert {k: v for k, v in after["cells"][4].items() if k != "source"} == \
        {k: v for k, v in before["cells"][4].items() if k != "source"}
    again = run(["--no-cache", "--output-format", "json", "nb.ipynb"], tmp_path)
    assert [d["code"] for d in json.loads(again.output)] == ["NAN101"]


def test_a_broken_notebook_is_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "bad.ipynb").write_text("{not json", encoding="utf-8")
    result = run(["--no-cache", "bad.ipynb"], tmp_path)
    assert result.exit_code == 1 and "NAN000 not a notebook: invalid JSON" in result.output


def test_pre_commit_hook_lints_a_staged_notebook(tmp_path: Path) -> None:
    from test_precommit import environment, git, local_config, run as run_process  # skips without pre-commit

    env = environment(tmp_path)
    repo = tmp_path / "project"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], env=env, check=True, timeout=60)
    notebook(repo)
    (repo / ".pre-commit-config.yaml").write_text(local_config(["nanlint"]), encoding="utf-8")
    git(repo, "add", "nb.ipynb", ".pre-commit-config.yaml")
    result = run_process(repo, env, sys.executable, "-m", "pre_commit", "run")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "nb.ipynb:cell 2:2:12: NAN101" in output and "Failed" in output
