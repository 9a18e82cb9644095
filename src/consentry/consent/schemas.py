"""Request and response shapes of the consent endpoints."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from consentry.subjects import ANONYMOUS_PATTERN, SUBJECT_ID_PATTERN

# `notice`: the defaults consent.js applied in an opt-out region; recorded, but not a choice.
Source = Literal["banner", "preference_center", "api", "import", "notice"]
Method = Literal["accept_all", "reject_all", "custom"]
CategorySource = Literal["required", "default", "gpc", "user", "admin"]

REGION_PATTERN = r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$"
REGION_DESCRIPTION = "ISO 3166-1 alpha-2 or 3166-2 code, e.g. DE, US-CA."
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"


@with_config(ConfigDict(extra="forbid"))
class CategoryChoices(TypedDict):
    """Granted flag of every optional category; `necessary` may appear, only as true."""

    necessary: NotRequired[StrictBool]
    performance: StrictBool
    functional: StrictBool
    customization: StrictBool


@with_config(ConfigDict(extra="forbid"))
class SomeCategoryChoices(TypedDict, total=False):
    """Granted flag of some categories; the others keep their value."""

    necessary: StrictBool
    performance: StrictBool
    functional: StrictBool
    customization: StrictBool


class ChoiceContext(BaseModel):
    """Everything a choice carries besides the categories: what was shown, where, how."""

    model_config = ConfigDict(extra="forbid")

    policy_version: str = Field(min_length=1, max_length=32)
    source: Source
    method: Method | None = None
    region: str | None = Field(default=None, pattern=REGION_PATTERN)
    language: str | None = Field(default=None, max_length=35, pattern=LANGUAGE_PATTERN)

    @model_validator(mode="after")
    def _notice_has_no_method(self) -> ChoiceContext:
        # A notice applies defaults; a method would make it read like a choice in the history.
        if self.source == "notice" and self.method is not None:
            raise ValueError("a notice has no method")
        return self


class ConsentUpdate(ChoiceContext):
    """A learner's whole choice (PUT), from the banner, the preference center or a service."""

    categories: CategoryChoices


class ConsentPatch(ChoiceContext):
    """A change to some categories (PATCH)."""

    categories: SomeCategoryChoices


class CategoryStateRead(BaseModel):
    """One category of a subject's consent."""

    granted: bool
    required: bool
    source: CategorySource
    updated_at: str | None


class ConsentRead(BaseModel):
    """A subject's consent as it holds now."""

    subject_id: str
    region: str | None
    regime: Literal["opt_in", "opt_out"]
    policy_version: str
    stale: bool
    revision: int
    categories: dict[str, CategoryStateRead]
    consent_mode: dict[str, Literal["granted", "denied"]]
    language: str | None
    updated_at: str | None
    receipt_id: str | None


class ConsentRecordRead(BaseModel):
    """One change in a subject's history."""

    id: str
    recorded_at: str
    categories: dict[str, bool]
    changed: list[str]
    source: str
    method: str | None
    actor: str
    policy_version: str
    region: str | None
    language: str | None
    gpc: bool
    user_agent: str | None
    ip: str | None
    hash: str
    prev_hash: str | None
    linked_from: str | None = Field(
        default=None,
        description="Only on a record that carried an anonymous visitor's choice over: the "
        "receipt id of the visitor's record. Hashed with the record when present.",
    )


class ConsentHistoryPage(BaseModel):
    """A page of history, newest first."""

    items: list[ConsentRecordRead]
    next_cursor: str | None


class ConsentLinkCreate(BaseModel):
    """The anonymous id whose banner choice a learner who just signed in may take over."""

    model_config = ConfigDict(extra="forbid")

    anonymous_id: str = Field(
        pattern=ANONYMOUS_PATTERN,
        description="The visitor's `anon:<uuid4>` id, from consent.js's cookie.",
    )


# The body of a bulk decision: 1,000 ids of 256 characters, quoted and separated, with room.
MAX_DECISIONS = 1000
MAX_DECISIONS_BYTES = 512 * 1024
SubjectId = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=SUBJECT_ID_PATTERN)
]
Category = Literal["necessary", "performance", "functional", "customization"]


class DecisionsQuery(BaseModel):
    """Many subjects, the categories to decide for each."""

    model_config = ConfigDict(extra="forbid")

    subject_ids: list[SubjectId] = Field(min_length=1, max_length=MAX_DECISIONS)
    categories: list[Category] = Field(min_length=1, max_length=4)


class DecisionRead(BaseModel):
    """What one subject allows now."""

    subject_id: str
    erased: bool
    categories: dict[str, bool]


class DecisionsRead(BaseModel):
    """One decision per requested id, in request order (not paginated)."""

    items: list[DecisionRead]
