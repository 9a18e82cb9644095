"""Shapes of the integration endpoints: the catalogue, a learner's connections and their history."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from consentry.pagination import NEXT_CURSOR_DESCRIPTION
from consentry.providers.schemas import (
    PROVIDER_ID_PATTERN,
    DataShared,
    Name,
    ProviderId,
    Purpose,
    _plain_text,
    _unique,
)

INTEGRATION_ID_PATTERN = PROVIDER_ID_PATTERN
INTEGRATION_ID_DESCRIPTION = (
    "The integration's id: lower-case letters, digits and hyphens, up to 64, e.g. `cloud-drive`."
)
_STATUS = (
    "`none` (never asked), `pending` (asked, waiting for the learner), `informed` (the learner "
    "was told; data may flow until they decline), `approved`, `declined` or `revoked`."
)
_SOURCE = (
    "Who set the status: `learner` (own JWT), `platform` (a request, or a relayed answer), "
    "`notice` (an `inform` integration's notice), `admin` (the privacy team); null while `none`."
)
# A path segment of its own under /v1/subjects/{subject_id}/integrations: never an integration.
RESERVED_IDS = frozenset({"history"})
SCOPE_ID_PATTERN = r"^[a-z][a-z0-9_.:-]{0,63}$"
LANGUAGE_PATTERN = r"^[a-z]{2}$"
_INTEGRATION_ID = re.compile(INTEGRATION_ID_PATTERN)

Kind = Literal["cloud_storage", "calendar", "school_roster", "learning_tool"]
Default = Literal["ask", "inform"]
Status = Literal["none", "pending", "informed", "approved", "declined", "revoked"]
Source = Literal["learner", "platform", "notice", "admin"]


def is_integration_id(value: str) -> bool:
    """Whether `value` is a well-formed integration id (`history` is not one)."""
    return _INTEGRATION_ID.fullmatch(value) is not None and value not in RESERVED_IDS


def _not_reserved(value: str) -> str:
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved and cannot name an integration")
    return value


IntegrationId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=INTEGRATION_ID_PATTERN,
        description=INTEGRATION_ID_DESCRIPTION + " `history` is reserved.",
    ),
    AfterValidator(_not_reserved),
]
ScopeId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=SCOPE_ID_PATTERN, examples=["files.write"]),
]
Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_plain_text)]
ScopeList = Annotated[
    list[ScopeId],
    Field(max_length=32, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]


class ScopeDeclaration(BaseModel):
    """One kind of access an integration asks for, and what it means for the learner."""

    model_config = ConfigDict(extra="forbid")

    id: ScopeId = Field(description="The scope's id, e.g. `files.write`.")
    description: Text = Field(description="What it lets the integration do, for the learner.")


class Translation(BaseModel):
    """An integration's texts in another language; what it leaves out stays English."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, description="The name in this language.")
    purpose: Purpose | None = Field(default=None, description="The purpose in this language.")
    scopes: dict[ScopeId, Text] = Field(
        default_factory=dict,
        max_length=32,
        description="Scope descriptions in this language, by declared scope id.",
    )


Translations = Annotated[
    dict[Annotated[str, Field(pattern=LANGUAGE_PATTERN)], Translation],
    Field(
        max_length=16,
        description="Texts by ISO 639-1 language code, e.g. `de`; English is the main text.",
    ),
]

_EXAMPLE_FIELDS: dict[str, Any] = {
    "name": "Cloud drive",
    "kind": "cloud_storage",
    "provider_id": "cloud-drive-inc",
    "purpose": "Saves the assignments you hand in to your own cloud drive.",
    "data_shared": ["assignments", "course_names"],
    "scopes": [
        {"id": "files.write", "description": "Save your submitted assignments in your drive."},
        {"id": "profile.read", "description": "Read your drive's account name to show it."},
    ],
    "default": "ask",
    "translations": {
        "de": {
            "name": "Cloud-Speicher",
            "purpose": "Speichert Ihre abgegebenen Aufgaben in Ihrem eigenen Cloud-Speicher.",
            "scopes": {"files.write": "Ihre abgegebenen Aufgaben im Speicher ablegen."},
        }
    },
}
EXAMPLE_INTEGRATION: dict[str, Any] = {"id": "cloud-drive", **_EXAMPLE_FIELDS}


class IntegrationFields(BaseModel):
    """Everything said about an integration but its id."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="The name the learner sees, e.g. `Cloud drive`.")
    kind: Kind = Field(description="What sort of tool or connection it is.")
    provider_id: ProviderId = Field(description="The provider that receives the data.")
    purpose: Purpose = Field(description="Why data is exchanged, for the learner.")
    data_shared: DataShared = Field(description="What data it receives, e.g. `assignments`.")
    scopes: list[ScopeDeclaration] = Field(
        min_length=1, max_length=32, description="What the integration may do; no id twice."
    )
    default: Default = Field(
        description="`ask`: nothing flows until the learner approves. `inform`: the learner is "
        "told and data may flow until they decline."
    )
    translations: Translations = Field(
        default_factory=dict,
        description="Texts by ISO 639-1 language code, e.g. `de`; English is the main text.",
    )

    @model_validator(mode="after")
    def _scopes_agree(self) -> IntegrationFields:
        ids = [scope.id for scope in self.scopes]
        if len(set(ids)) != len(ids):
            raise ValueError("scopes must not declare an id twice")
        for language, translation in self.translations.items():
            unknown = set(translation.scopes) - set(ids)
            if unknown:
                raise ValueError(f"translations.{language} names undeclared scopes")
        return self


class IntegrationCreate(IntegrationFields):
    """A new integration (POST)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_INTEGRATION]})

    id: IntegrationId


class IntegrationReplace(IntegrationFields):
    """An integration's whole description (PUT); `id`, when given, must be the one in the path."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE_FIELDS]})

    id: IntegrationId | None = Field(
        default=None, description="Optional; when given, the id in the path."
    )


EDITABLE_FIELDS: tuple[str, ...] = tuple(IntegrationFields.model_fields)


class ScopeRead(BaseModel):
    """A declared scope as read."""

    id: str = Field(description="The scope's id.")
    description: str = Field(
        description="What it lets the integration do, in the language asked for."
    )


class TranslationRead(BaseModel):
    """A translation as read."""

    name: str | None = Field(default=None, description="The name in this language, if translated.")
    purpose: str | None = Field(
        default=None, description="The purpose in this language, if translated."
    )
    scopes: dict[str, str] = Field(
        default_factory=dict, description="Scope descriptions in this language, by scope id."
    )


class IntegrationRead(BaseModel):
    """An integration as the catalogue lists it, in the language asked for."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE_INTEGRATION,
                    "created_at": "2026-12-01T09:00:00.000000Z",
                    "updated_at": "2026-12-01T09:00:00.000000Z",
                }
            ]
        }
    )

    id: str = Field(description="The integration's id.")
    name: str = Field(description="Its name, in the language asked for.")
    kind: Kind = Field(
        description="`cloud_storage`, `calendar`, `school_roster` or `learning_tool`."
    )
    provider_id: str = Field(
        description="The provider that receives the data (see `/v1/providers`)."
    )
    purpose: str = Field(description="Why data is exchanged, in the language asked for.")
    data_shared: list[str] = Field(description="What data it receives.")
    scopes: list[ScopeRead] = Field(description="What it may do, each described for the learner.")
    default: Default = Field(
        description="`ask` (nothing flows until the learner approves) or `inform` (data may flow "
        "until the learner declines)."
    )
    translations: dict[str, TranslationRead] = Field(
        description="Every translation, by language code."
    )
    created_at: str = Field(description="When it was added to the catalogue.")
    updated_at: str = Field(description="When its description last changed.")


class IntegrationPage(BaseModel):
    """A page of the catalogue, ordered by id."""

    items: list[IntegrationRead] = Field(description="Integrations, ordered by id.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)


class ConnectionRequest(BaseModel):
    """The platform asks the learner to connect (POST .../requests)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"scopes": ["files.write"]}]}
    )

    scopes: Annotated[ScopeList, Field(min_length=1, description="Declared scopes to ask for.")]


class ConnectionDecision(BaseModel):
    """The learner's answer (PUT): approve some declared scopes, or decline."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "approve", "scopes": ["files.write"]}]},
    )

    decision: Literal["approve", "decline"] = Field(
        description="`approve` (with the scopes) or `decline`."
    )
    scopes: ScopeList = Field(
        default_factory=list, description="The scopes approved: at least one; none to decline."
    )

    @model_validator(mode="after")
    def _approval_names_scopes(self) -> ConnectionDecision:
        if self.decision == "approve" and not self.scopes:
            raise ValueError("an approval names at least one scope")
        return self


_EXAMPLE_CONNECTION: dict[str, Any] = {
    "integration_id": "cloud-drive",
    "status": "approved",
    "scopes": ["files.write"],
    "requested_at": "2026-12-01T09:00:00.000000Z",
    "decided_at": "2026-12-01T09:05:00.000000Z",
    "source": "learner",
}


class ConnectionRead(BaseModel):
    """A learner's connection to one integration; data may flow when `approved` or `informed`."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_CONNECTION]})

    integration_id: str = Field(description="The integration.")
    status: Status = Field(description=_STATUS)
    scopes: list[str] = Field(
        description="The scopes data may flow within (when `approved` or `informed`), or that were "
        "asked for."
    )
    requested_at: str | None = Field(
        description="When the platform asked or informed; null if it never did."
    )
    decided_at: str | None = Field(
        description="When the status was last decided (approved, declined, revoked); null before."
    )
    source: Source | None = Field(description=_SOURCE)


class ConnectionPage(BaseModel):
    """Every integration with the learner's connection, ordered by integration id."""

    items: list[ConnectionRead] = Field(description="Connections, ordered by integration id.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)


class IntegrationRecordRead(BaseModel):
    """One record of a learner's integration history, chained to the one before."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c8a1e-3b7d-4c1a-9a57-2f0e4f7a1b2c",
                    "recorded_at": "2026-12-01T09:05:00.000000Z",
                    "integration_id": "cloud-drive",
                    "status": "approved",
                    "scopes": ["files.write"],
                    "source": "learner",
                    "actor": "subject",
                    "hash": "9b0c…",
                    "prev_hash": "41d2…",
                }
            ]
        }
    )

    id: str = Field(description="The record's id.")
    recorded_at: str = Field(description="When it was recorded (RFC 3339, UTC).")
    integration_id: str = Field(description="The integration.")
    status: Status = Field(description="The connection's status after this record.")
    scopes: list[str] = Field(description="The connection's scopes after this record.")
    source: Source = Field(description=_SOURCE)
    actor: str = Field(description="Who recorded it: `subject`, or the API key's name.")
    hash: str = Field(
        description="SHA-256 (hex) over `prev_hash` and this record's canonical JSON."
    )
    prev_hash: str | None = Field(description="The previous record's hash; null on the first.")


class IntegrationHistoryPage(BaseModel):
    """A page of the learner's integration history, newest first."""

    items: list[IntegrationRecordRead] = Field(description="Records, newest first.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)
