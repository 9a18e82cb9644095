"""The container image's recipe, and the wheel it installs: migrations run without a source tree.

CI has no Docker engine, so the Dockerfile is read rather than built; the wheel is built and
run for real, the way the image's second stage installs and runs it.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from consentry import migrations
from tests.processes import environment

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_image_builds_a_wheel_then_installs_it_on_a_slim_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert " AS build" in build[0][1]
    assert any(k == "RUN" and "pip wheel" in a for k, a in build)
    assert "-slim" in runtime[0][1]
    install = [a for k, a in runtime if k == "RUN" and "--find-links" in a]
    assert install, "the runtime stage installs the built wheels"
    assert "from=build" in install[0] and "--no-index" in install[0]
    # Only the files the wheel is made of reach the build stage.
    copied = {source for k, a in build if k == "COPY" for source in a.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "src", "migrations"}


def test_the_image_runs_as_a_fixed_non_root_user_with_a_healthcheck() -> None:
    runtime = _stages()[-1]
    users = [a for k, a in runtime if k == "USER"]
    assert users, "the runtime stage names its user"
    uid = users[-1].split(":")[0]
    # Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) >= 1000
    healthchecks = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0] and "urllib" in healthchecks[0]
    assert "curl" not in healthchecks[0]
    environment_lines = " ".join(a for k, a in runtime if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in environment_lines
    assert "PYTHONUNBUFFERED=1" in environment_lines
    command = [a for k, a in runtime if k == "CMD"][-1]
    assert '"consentry", "serve"' in command and '"0.0.0.0"' in command


def _ignored(patterns: list[str], path: str) -> bool:
    """Whether `.dockerignore` keeps `path` out (its last matching pattern decides).

    A pattern matches a path or any folder above it; `**/` lets it start at any depth.
    """
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        bare = pattern.removeprefix("!")
        anywhere = bare.startswith("**/")
        starts = range(len(parts)) if anywhere else range(1)
        names = [
            "/".join(parts[start : end + 1]) for start in starts for end in range(start, len(parts))
        ]
        if any(fnmatch.fnmatchcase(name, bare.removeprefix("**/")) for name in names):
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "consentry.db",
        "consentry.db-wal",
        "consentry.db-shm",
        ".env",
        "src/consentry/__pycache__/app.cpython-312.pyc",
        "src/consentry/policy/__pycache__/stale.txt",
        "tests/conftest.py",
    ):
        assert _ignored(patterns, path), path
    for path in ("pyproject.toml", "README.md", "src/consentry/app.py", "migrations/env.py"):
        assert not _ignored(patterns, path), path


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built as the image builds it and unpacked as pip would install it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("consentry-*.whl")
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_wheel_carries_every_migration(unpacked_wheel: Path) -> None:
    shipped = {p.name for p in (unpacked_wheel / "consentry/_migrations/versions").glob("*.py")}
    written = {p.name for p in (ROOT / "migrations/versions").glob("*.py")}
    assert shipped == written
    assert (unpacked_wheel / "consentry/_migrations/env.py").is_file()


def test_migrate_runs_from_the_installed_wheel_outside_the_source_tree(
    unpacked_wheel: Path, empty_database: str, tmp_path: Path
) -> None:
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import consentry.cli, consentry.migrations as m;"
        "assert str(m.migrations_dir()).startswith(sys.argv[1]), m.migrations_dir();"
        "sys.exit(consentry.cli.main(['migrate']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(unpacked_wheel)],
        cwd=tmp_path,
        env=environment(CONSENTRY_DATABASE_URL=empty_database),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"database schema at {migrations.head_revision()}"


def test_the_wheel_carries_the_api_docs_files_and_their_licences(
    unpacked_wheel: Path, tmp_path: Path
) -> None:
    source = ROOT / "src/consentry/web/static"
    shipped = unpacked_wheel / "consentry/web/static"
    written = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    assert {p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file()} == written
    for name in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (shipped / "vendor" / name).is_file(), name
    # The installed package builds its docs routes from its own files, outside the source tree.
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import consentry.web.routes as r;"
        "assert r.__file__.startswith(sys.argv[1]), r.__file__;"
        "r.build_router(docs=True)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(unpacked_wheel)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
