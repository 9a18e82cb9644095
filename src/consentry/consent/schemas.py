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

from consentry.pagination import NEXT_CURSOR_DESCRIPTION as _NEXT_CURSOR
from consentry.subjects import ANONYMOUS_PATTERN, SUBJECT_ID_PATTERN

# `notice`: the defaults consent.js applied in an opt-out region; recorded, but not a choice.
Source = Literal["banner", "preference_center", "api", "import", "notice"]
Method = Literal["accept_all", "reject_all", "custom"]
CategorySource = Literal["required", "default", "gpc", "user", "admin"]

REGION_PATTERN = r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$"
REGION_DESCRIPTION = "ISO 3166-1 alpha-2 or 3166-2 code, e.g. DE, US-CA."
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"
_NECESSARY = "Login, sessions, saving submitted work: always granted; only `true` is accepted."
_PERFORMANCE = "Analytics: popular courses, time on topic, load problems."
_FUNCTIONAL = "Remembered language, accessibility, theme, resume position."
_CUSTOMIZATION = "Recommendations, tailored resources, difficulty adjustment."
_RECORD_ID = "The id of a history record: the receipt of that change."


@with_config(ConfigDict(extra="forbid"))
class CategoryChoices(TypedDict):
    """Granted flag of every optional category; `necessary` may appear, only as true."""

    necessary: NotRequired[Annotated[StrictBool, Field(description=_NECESSARY)]]
    performance: Annotated[StrictBool, Field(description=_PERFORMANCE)]
    functional: Annotated[StrictBool, Field(description=_FUNCTIONAL)]
    customization: Annotated[StrictBool, Field(description=_CUSTOMIZATION)]


@with_config(ConfigDict(extra="forbid"))
class SomeCategoryChoices(TypedDict, total=False):
    """Granted flag of some categories; the others keep their value."""

    necessary: Annotated[StrictBool, Field(description=_NECESSARY)]
    performance: Annotated[StrictBool, Field(description=_PERFORMANCE)]
    functional: Annotated[StrictBool, Field(description=_FUNCTIONAL)]
    customization: Annotated[StrictBool, Field(description=_CUSTOMIZATION)]


class ChoiceContext(BaseModel):
    """Everything a choice carries besides the categories: what was shown, where, how."""

    model_config = ConfigDict(extra="forbid")

    policy_version: str = Field(
        min_length=1,
        max_length=32,
        description="The policy version the learner was shown; one the service knows "
        "(`GET /v1/policy`).",
    )
    source: Source = Field(
        description="Where the choice was made; `notice` records the defaults consent.js "
        "applied in an opt-out region, which is not a choice."
    )
    method: Method | None = Field(
        default=None,
        description="How the learner chose: one button for all, or category by category. "
        "Never on a notice.",
    )
    region: str | None = Field(
        default=None,
        pattern=REGION_PATTERN,
        description="The learner's region, " + REGION_DESCRIPTION + " Decides the regime.",
    )
    language: str | None = Field(
        default=None,
        max_length=35,
        pattern=LANGUAGE_PATTERN,
        description="BCP 47 language tag of the texts the learner read, e.g. `de`.",
    )

    @model_validator(mode="after")
    def _notice_has_no_method(self) -> ChoiceContext:
        # A notice applies defaults; a method would make it read like a choice in the history.
        if self.source == "notice" and self.method is not None:
            raise ValueError("a notice has no method")
        return self


class ConsentUpdate(ChoiceContext):
    """A learner's whole choice (PUT), from the banner, the preference center or a service."""

    categories: CategoryChoices = Field(
        description="Granted (`true`) or refused (`false`) for every optional category."
    )


class ConsentPatch(ChoiceContext):
    """A change to some categories (PATCH)."""

    categories: SomeCategoryChoices = Field(
        description="Granted or refused for the categories that change; the others keep theirs."
    )


class CategoryStateRead(BaseModel):
    """One category of a subject's consent."""

    granted: bool = Field(description="Whether data of this category may be collected now.")
    required: bool = Field(description="True for `necessary`: always granted.")
    source: CategorySource = Field(
        description="Where the value comes from: `required`, the regime's `default`, Global "
        "Privacy Control (`gpc`), the learner's choice (`user`) or the privacy team (`admin`)."
    )
    updated_at: str | None = Field(
        description="When the value was last recorded (RFC 3339, UTC); null while it is a "
        "default that no record holds."
    )


class ConsentRead(BaseModel):
    """A subject's consent as it holds now."""

    subject_id: str = Field(description="The subject: a platform user id or `anon:<uuid4>`.")
    region: str | None = Field(description="The region the defaults were taken from, if known.")
    regime: Literal["opt_in", "opt_out"] = Field(
        description="The region's regime: `opt_in` denies optional categories by default, "
        "`opt_out` grants them."
    )
    policy_version: str = Field(
        description="The policy version of the latest choice, else the one in force."
    )
    stale: bool = Field(
        description="True when the choice was made under an older policy version: ask again."
    )
    revision: int = Field(
        description="0 without a record; one more with each recorded change. A webhook "
        "receiver ignores a state older than one it has."
    )
    categories: dict[str, CategoryStateRead] = Field(
        description="Every category of the policy, by id."
    )
    consent_mode: dict[str, Literal["granted", "denied"]] = Field(
        description="The same state in Google Consent Mode v2 terms, ready for `gtag`."
    )
    language: str | None = Field(description="The language of the latest record, if any.")
    updated_at: str | None = Field(description="When the latest record was written; null without.")
    receipt_id: str | None = Field(
        description="The id of the history record just written (or the latest one): proof of "
        "the choice the frontend may keep. Null without a record."
    )


class ConsentRecordRead(BaseModel):
    """One change in a subject's history."""

    id: str = Field(description=_RECORD_ID)
    recorded_at: str = Field(description="When it was recorded (RFC 3339, UTC).")
    categories: dict[str, bool] = Field(
        description="Every category's granted flag after the change."
    )
    changed: list[str] = Field(description="The categories whose value this record changed.")
    source: str = Field(description="Where the choice was made (`banner`, `notice`, ...).")
    method: str | None = Field(
        description="`accept_all`, `reject_all`, `custom`, `linked`, or null."
    )
    actor: str = Field(description="Who recorded it: `subject`, or the API key's name.")
    policy_version: str = Field(description="The policy version the choice was made under.")
    region: str | None = Field(description="The region sent with the choice.")
    language: str | None = Field(description="The language sent with the choice.")
    gpc: bool = Field(description="Whether the request carried `Sec-GPC: 1`.")
    user_agent: str | None = Field(description="The client's user agent; dropped by erasure.")
    ip: str | None = Field(
        description="The client's address truncated to /24 (IPv4) or /48 (IPv6); dropped by "
        "erasure."
    )
    hash: str = Field(
        description="SHA-256 (hex) over `prev_hash` and this record's canonical JSON."
    )
    prev_hash: str | None = Field(description="The previous record's hash; null on the first.")
    linked_from: str | None = Field(
        default=None,
        description="Only on a record that carried an anonymous visitor's choice over: the "
        "receipt id of the visitor's record. Hashed with the record when present.",
    )


class ConsentHistoryPage(BaseModel):
    """A page of history, newest first."""

    items: list[ConsentRecordRead] = Field(description="Records, newest first.")
    next_cursor: str | None = Field(description=_NEXT_CURSOR)


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

    subject_ids: list[SubjectId] = Field(
        min_length=1,
        max_length=MAX_DECISIONS,
        description="1-1000 subject ids; one invalid id refuses the whole request.",
    )
    categories: list[Category] = Field(
        min_length=1, max_length=4, description="The categories to decide for each subject."
    )


class DecisionRead(BaseModel):
    """What one subject allows now."""

    subject_id: str = Field(description="The subject id, as requested.")
    erased: bool = Field(description="True when the subject was erased: every category false.")
    categories: dict[str, bool] = Field(
        description="Whether an event of each requested category happening now is accepted."
    )


class DecisionsRead(BaseModel):
    """One decision per requested id, in request order (not paginated)."""

    items: list[DecisionRead] = Field(description="One decision per requested id, in order.")
