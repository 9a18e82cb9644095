"""Every shell example of the README, run in order against a server started as the README says.

The README's ```sh blocks run one after another in one bash session, as a reader runs them in
one terminal: a variable one block sets (`LEARNER_TOKEN=$(...)`) is there for the next. The block
holding `make run` starts the server: its lines before `make run` give the server's environment,
and `make run` becomes `.venv/bin/consentry serve` on a free port of a fresh directory (so
`consentry.db` is a fresh SQLite file). The only change made to a block is that port, in
`http://127.0.0.1:8000`. The fenced block right after a ```sh block is what it prints: the
status line, any headers shown and the JSON fields shown must be in the answer; `...` is any
value.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import environment, server_process

README = Path(__file__).parents[1] / "README.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
# A fenced block, also one indented inside a list item: its indent, language and text.
FENCE = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
ANY = "..."
BASH = shutil.which("bash") or "/bin/bash"


@dataclass(frozen=True)
class Example:
    """One ```sh block: where it starts, its commands, and what it prints."""

    line: int
    script: str
    expected: str | None


def examples(text: str) -> list[Example]:
    """The ```sh blocks of `text` in order, each with the fenced block right after it."""
    fences = list(FENCE.finditer(text))
    found = []
    for index, fence in enumerate(fences):
        if fence.group(2) != "sh":
            continue
        expected = None
        if index + 1 < len(fences):
            following = fences[index + 1]
            adjacent = not text[fence.end() : following.start()].strip()
            if adjacent and following.group(2) != "sh":
                expected = _unindented(following)
        found.append(Example(text.count("\n", 0, fence.start()) + 1, _unindented(fence), expected))
    return found


def _unindented(fence: re.Match[str]) -> str:
    """The text of a fenced block without the indent of its fence."""
    indent = fence.group(1)
    return "".join(line.removeprefix(indent) for line in fence.group(3).splitlines(True))


def _matches(expected: Any, actual: Any) -> bool:
    """Whether `actual` holds every field of `expected`, where "..." (also inside text) is any."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        if expected and expected[-1] == ANY:
            shown = expected[:-1]
            return len(actual) >= len(shown) and all(map(_matches, shown, actual))
        return len(actual) == len(expected) and all(map(_matches, expected, actual))
    if isinstance(expected, str) and ANY in expected:
        return isinstance(actual, str) and _text_matches(expected, actual)
    return bool(expected == actual and type(expected) is type(actual))


def _text_matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split(ANY))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def check_output(expected: str, output: str) -> None:
    """Fail unless `output` is what `expected` shows."""
    if not expected.startswith("HTTP/"):
        lines, shown = output.strip().splitlines(), expected.strip().splitlines()
        assert len(lines) == len(shown), output
        for want, got in zip(shown, lines, strict=True):
            assert _text_matches(want, got), f"{got!r} is not {want!r}"
        return
    head, _, body = output.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    want_head, _, want_body = expected.partition("\n\n")
    want_status, *want_headers = want_head.splitlines()
    assert status_line.split()[1] == want_status.split()[1], output
    for line in want_headers:
        name, _, value = line.partition(":")
        sent = headers.get(name.strip().lower())
        assert sent is not None, f"no {name} header in\n{output}"
        assert _text_matches(value.strip(), sent), f"{name}: {sent!r} is not {value.strip()!r}"
    if want_body.strip():
        assert _matches(json.loads(want_body), json.loads(body)), f"{body}\nis not\n{want_body}"


class Session:
    """One bash session, block after block, its variables carried over in a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.variables = directory / ".variables"
        self.variables.write_text("")
        self.env = environment()
        # As after `make run` in a fresh clone: the command in the project's own virtualenv.
        shim = directory / ".venv" / "bin" / "consentry"
        shim.parent.mkdir(parents=True)
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m consentry "$@"\n')
        shim.chmod(0o755)

    def run(self, example: Example, script: str) -> str:
        """The block's output; fails the test, saying where, when a command in it fails."""
        wrapped = (
            f"set -euo pipefail\nset -a\nsource {self.variables}\n{script}\n"
            f"export -p > {self.variables}\n"
        )
        result = subprocess.run(
            [BASH, "-c", wrapped],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (
            f"README.md:{example.line} failed ({result.returncode}):\n{script}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result.stdout

    def exported(self) -> dict[str, str]:
        """The environment the blocks so far exported."""
        listing = self.run(Example(0, "", None), "env -0")
        pairs = (entry.partition("=") for entry in listing.split("\0") if entry)
        return {name: value for name, _, value in pairs}


def test_every_shell_example_runs_and_answers_as_shown(tmp_path: Path) -> None:
    text = README.read_text()
    found = examples(text)
    assert len(found) == len(re.findall(r"^[ \t]*```sh\b", text, re.MULTILINE))
    [start] = [e for e in found if re.search(r"^make run$", e.script, re.MULTILINE)]
    session = Session(tmp_path)
    with ExitStack() as stack:
        base = None
        for example in found:
            if example is start:
                session.run(example, example.script.partition("make run")[0])
                # `make run` is `.venv/bin/consentry serve` here; only the port differs.
                server = server_process(session.exported(), tmp_path / "serve.log", cwd=tmp_path)
                base = stack.enter_context(server).base
                continue
            assert base is not None, f"README.md:{example.line} runs before the server starts"
            output = session.run(example, example.script.replace(DOCUMENTED_BASE, base))
            if example.expected is None:
                continue
            try:
                check_output(example.expected, output)
            except AssertionError as failure:
                message = f"README.md:{example.line} answered otherwise:\n{failure}"
                raise AssertionError(message) from None
    assert found.index(start) < len(found) - 1, "no example follows the server's start"


def test_a_block_that_fails_or_answers_otherwise_is_caught(tmp_path: Path) -> None:
    session = Session(tmp_path)
    with pytest.raises(AssertionError, match=r"README\.md:7 failed"):
        session.run(Example(7, "", None), "false")
    session.run(Example(1, "", None), "GREETING=hello")
    assert session.run(Example(2, "", None), 'echo "$GREETING"') == "hello\n"
    with pytest.raises(AssertionError):
        check_output('HTTP/1.1 200 OK\n\n{"status": "pending"}', _answer(201, "pending"))
    with pytest.raises(AssertionError):
        check_output('HTTP/1.1 201 Created\n\n{"status": "pending"}', _answer(201, "done"))
    check_output('HTTP/1.1 201 Created\n\n{"status": "pend..."}', _answer(201, "pending"))


def _answer(status: int, state: str) -> str:
    body = json.dumps({"id": "r-1", "status": state})
    return f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\r\n{body}"


def test_every_link_within_the_readme_names_a_heading() -> None:
    text = FENCE.sub("", README.read_text())
    headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links - headings == set()


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
