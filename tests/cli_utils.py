"""Running `lm` in a subprocess and checking what it printed; shared by the CLI tests."""

import json
import os
import subprocess
import sys

TINY_FLAGS = ["--hidden", "16", "--embed", "8", "--seq-len", "10", "--batch-size", "4"]


def run_lm(*args, cwd, env_extra=None):
    """`python -m lm ARGS` in cwd, with a terminal width fixed by nothing but the defaults."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "lm", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def run_main(monkeypatch, capsys, *args):
    """`lm ARGS` in this process (fast): exit code, stdout, stderr."""
    from lm import cli

    monkeypatch.setattr(sys, "argv", ["lm", *map(str, args)])
    try:
        cli.main()
    except SystemExit as exit_info:
        captured = capsys.readouterr()
        return exit_info.code, captured.out, captured.err
    raise AssertionError("lm's main returned without exiting")


def assert_ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def assert_one_line_error(result, *fragments, code=None):
    """Exit != 0 (or `code`), exactly one non-empty stderr line "lm: error: ...", no traceback."""
    assert result.returncode != 0
    if code is not None:
        assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lm: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
