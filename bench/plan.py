"""The seed plan: who holds which consent, their tokens, and the events the load sends."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson

SUBJECTS = 10_000
SEED = 2026
OPTIONAL = ("performance", "functional", "customization")
CATEGORIES = ("necessary", *OPTIONAL)
# Group name → the recorded choice (None: never recorded), and how many of every 10 subjects.
GROUPS: dict[str, tuple[dict[str, bool] | None, int]] = {
    "all_granted": ({"performance": True, "functional": True, "customization": True}, 4),
    "performance_only": ({"performance": True, "functional": False, "customization": False}, 2),
    "all_denied": ({"performance": False, "functional": False, "customization": False}, 2),
    "no_record": (None, 2),
}
BATCH_SIZE = 100
# Every 5th event of a batch is one the service must reject: 80 % accepted.
REJECT_EVERY = 5
# Events happened this many seconds before they are sent: after the seeded grants began.
EVENT_AGE_SECONDS = 2
# The write load's warm-up flips its own subjects, so the measured run's knowledge stays true.
WARMUP_WRITE_SHARE = 5
TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class Subject:
    """One seeded subject: its id, its group, and its own user JWT."""

    number: int
    id: str
    group: str
    token: str

    @property
    def choice(self) -> dict[str, bool] | None:
        """The categories recorded for it, or None when it never chose."""
        return GROUPS[self.group][0]

    def accepts(self, category: str) -> bool:
        """Whether the gating rule accepts an event of `category` for this subject now."""
        choice = self.choice
        return category == "necessary" or (choice is not None and choice[category])


@dataclass(frozen=True)
class Plan:
    """Every subject, and the event templates the service must accept or reject."""

    subjects: list[Subject]
    accepted: list[dict[str, object]]
    rejected: list[dict[str, object]]

    @property
    def recorded(self) -> list[Subject]:
        """The subjects that get a consent record when seeded."""
        return [s for s in self.subjects if s.choice is not None]

    def writers(self) -> tuple[list[Subject], list[Subject]]:
        """Subjects whose consent the write load flips: (warm-up slice, measured slice)."""
        # Even numbers only: events go to odd ones, so writes never move an event's verdict.
        pool = [s for s in self.recorded if s.number % 2 == 0]
        cut = len(pool) // WARMUP_WRITE_SHARE
        return pool[:cut], pool[cut:]


def build_plan(secret: str, seed: int = SEED, count: int = SUBJECTS) -> Plan:
    """A deterministic plan for `seed`; only the tokens depend on the run's secret."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not a secret
    groups = [name for name, (_, tenths) in GROUPS.items() for _ in range(count * tenths // 10)]
    groups += ["no_record"] * (count - len(groups))
    rng.shuffle(groups)
    now = int(time.time())
    subjects = [
        Subject(number, f"bench-{number:05d}", group, _token(f"bench-{number:05d}", secret, now))
        for number, group in enumerate(groups, start=1)
    ]
    accepted, rejected = _event_templates(subjects, rng)
    return Plan(subjects, accepted, rejected)


def _token(subject_id: str, secret: str, now: int) -> str:
    claims = {"sub": subject_id, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS}
    return jwt.encode(claims, secret, algorithm="HS256")


def _event_templates(
    subjects: Sequence[Subject], rng: random.Random
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Every (odd subject, category) pair as an event without id and time, split by verdict."""
    accepted: list[dict[str, object]] = []
    rejected: list[dict[str, object]] = []
    for subject in subjects:
        if subject.number % 2 == 0:
            continue
        for category in CATEGORIES:
            template: dict[str, object] = {
                "subject_id": subject.id,
                "category": category,
                "name": "lesson.viewed",
                "properties": {"course_id": "bio-101", "lesson": rng.randint(1, 40)},
                "context": {"app": "web"},
            }
            (accepted if subject.accepts(category) else rejected).append(template)
    return accepted, rejected


def as_message(template: dict[str, object]) -> dict[str, object]:
    """An event template as a track message of segment-analytics-python, without id and time.

    The category travels in `properties.consent_category`, so the service stores the same event.
    """
    properties = template["properties"]
    assert isinstance(properties, dict)
    return {
        "type": "track",
        "userId": template["subject_id"],
        "event": template["name"],
        "properties": {**properties, "consent_category": template["category"]},
        "context": template["context"],
        "integrations": {},
    }


def batch_templates(plan: Plan, rng: random.Random) -> list[dict[str, object]]:
    """One batch's templates in the shape the Lua script sends: every 5th one rejected."""
    return [
        rng.choice(plan.rejected if i % REJECT_EVERY == 0 else plan.accepted)
        for i in range(1, BATCH_SIZE + 1)
    ]


def write_data_files(plan: Plan, directory: Path) -> dict[str, Path]:
    """The files the Lua scripts read in `init`; returns them by name."""
    warmup, measured = plan.writers()
    files = {
        "subjects": directory / "subjects.tsv",
        "writes_warmup": directory / "writes_warmup.tsv",
        "writes_measured": directory / "writes_measured.tsv",
        "events_accepted": directory / "events_accepted.jsonl",
        "events_rejected": directory / "events_rejected.jsonl",
        "messages_accepted": directory / "messages_accepted.jsonl",
        "messages_rejected": directory / "messages_rejected.jsonl",
    }
    _write_lines(files["subjects"], (f"{s.id}\t{s.token}" for s in plan.subjects))
    for name, slice_ in (("writes_warmup", warmup), ("writes_measured", measured)):
        _write_lines(files[name], (_writer_line(s) for s in slice_))
    for name, templates in (("events_accepted", plan.accepted), ("events_rejected", plan.rejected)):
        _write_lines(files[name], (orjson.dumps(t).decode() for t in templates))
    for name, templates in (
        ("messages_accepted", plan.accepted),
        ("messages_rejected", plan.rejected),
    ):
        _write_lines(files[name], (orjson.dumps(as_message(t)).decode() for t in templates))
    return files


def _writer_line(subject: Subject, granted: bool | None = None) -> str:
    if granted is None:
        granted = bool((subject.choice or {}).get("performance", False))
    return f"{subject.id}\t{subject.token}\t{int(granted)}"


def write_writer_files(
    plan: Plan, directory: Path, granted: dict[str, bool], suffix: str
) -> dict[str, Path]:
    """The write load's files again, from the grants stored now: a second write run flips on."""
    warmup, measured = plan.writers()
    files = {
        "writes_warmup": directory / f"writes_warmup_{suffix}.tsv",
        "writes_measured": directory / f"writes_measured_{suffix}.tsv",
    }
    for name, slice_ in (("writes_warmup", warmup), ("writes_measured", measured)):
        _write_lines(files[name], (_writer_line(s, granted[s.id]) for s in slice_))
    return files


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))
