"""The README's Python example runs as written (from the repository's top folder)."""

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    shutil.copytree(ROOT / "corpora", tmp_path / "corpora")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert (tmp_path / "kitchen.npz").exists()
    assert "epoch 1: validation loss" in out
    assert "the apple and pear salad" in out.splitlines()[-1]
