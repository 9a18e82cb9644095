"""Shapes of the provider endpoints: what the privacy team writes and what everyone reads."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from consentry.providers.countries import COUNTRY_CODES

PROVIDER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
PROVIDER_ID_DESCRIPTION = "Lower-case letters, digits and hyphens, up to 64, e.g. `video-cdn`."
DATA_ITEM_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
OPT_OUT_URL_PATTERN = r"^https://[!-~]+$"
_PROVIDER_ID = re.compile(PROVIDER_ID_PATTERN)

Kind = Literal["technology", "analytics", "payment", "support"]
# The policy's categories (consentry.policy.CATEGORIES), spelled out so the schema lists them.
Category = Literal["necessary", "performance", "functional", "customization"]
# The grounds on which personal data may leave the EEA, UK or Switzerland for the provider's
# countries (GDPR chapter V): an adequacy decision, standard contractual clauses, binding
# corporate rules, the EU-US Data Privacy Framework, or the learner's explicit consent.
# Null means no such transfer takes place.
TransferMechanism = Literal["adequacy", "SCC", "BCR", "DPF", "consent"]


def is_provider_id(value: str) -> bool:
    """Whether `value` is a well-formed provider id."""
    return _PROVIDER_ID.fullmatch(value) is not None


def _plain_text(value: str) -> str:
    # Control characters (NUL above all, which PostgreSQL refuses in text) never reach a page.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not hold control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not name an item twice")
    return values


def _assigned_country(code: str) -> str:
    if code not in COUNTRY_CODES:
        raise ValueError("is not an assigned ISO 3166-1 alpha-2 country code")
    return code


def _https_url(value: str) -> str:
    # urlsplit and .port raise ValueError on a malformed host or port; pydantic reports it.
    parts = urlsplit(value)
    if parts.port == 0 or not parts.hostname:
        raise ValueError("must name a host and a valid port")
    # A link published to every learner must not carry credentials.
    if "@" in parts.netloc:
        raise ValueError("must not carry user information")
    return value


Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_plain_text)]
Purpose = Annotated[
    str,
    Field(min_length=1, max_length=1000, description="Why the provider receives the data."),
    AfterValidator(_plain_text),
]
DataItem = Annotated[str, Field(pattern=DATA_ITEM_PATTERN)]
DataShared = Annotated[
    list[DataItem],
    Field(
        min_length=1,
        max_length=32,
        description="What the provider receives, e.g. `ip_address`; no item twice.",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_unique),
]
Country = Annotated[str, Field(pattern=COUNTRY_PATTERN), AfterValidator(_assigned_country)]
Countries = Annotated[
    list[Country],
    Field(
        min_length=1,
        max_length=len(COUNTRY_CODES),
        description="ISO 3166-1 alpha-2 codes of the countries where the data is processed.",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_unique),
]
OptOutUrl = Annotated[
    str,
    Field(
        max_length=512,
        pattern=OPT_OUT_URL_PATTERN,
        description="An https page where a learner can object to this provider directly.",
    ),
    AfterValidator(_https_url),
]
# A BCP 47 tag such as `de` or `de-CH`, kept in lower case so that a read matches it either way.
LANGUAGE_KEY_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}$"
LanguageKey = Annotated[
    str, Field(max_length=35, pattern=LANGUAGE_KEY_PATTERN), AfterValidator(str.lower)
]
Label = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_plain_text)]
ProviderId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=PROVIDER_ID_PATTERN),
]


class ProviderTranslation(BaseModel):
    """A provider's texts in one more language; `data_shared` names some items in it."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    purpose: Purpose
    data_shared: dict[DataItem, Label] = Field(
        default_factory=dict,
        max_length=32,
        description="Labels of the provider's `data_shared` items in this language.",
    )


class ProviderFields(BaseModel):
    """Everything said about a provider but its id."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Kind
    purpose: Purpose
    data_shared: DataShared
    category: Category = Field(description="The consent category whose grant lets data flow.")
    countries: Countries
    transfer_mechanism: TransferMechanism | None = Field(
        default=None,
        description="`adequacy`, `SCC`, `BCR`, `DPF` or `consent`; null when the data stays "
        "where no transfer safeguard is needed.",
    )
    opt_out_url: OptOutUrl | None = None
    translations: dict[LanguageKey, ProviderTranslation] = Field(
        default_factory=dict,
        max_length=32,
        description="Name and purpose in other languages, by language tag (`de`); "
        "`?language=` on the reads picks one.",
    )

    @model_validator(mode="after")
    def _labels_name_shared_items(self) -> ProviderFields:
        for language, translation in self.translations.items():
            unknown = set(translation.data_shared) - set(self.data_shared)
            if unknown:
                raise ValueError(
                    f"translations.{language}.data_shared names items the provider does not "
                    f"receive: {', '.join(sorted(unknown))}"
                )
        return self


class ProviderCreate(ProviderFields):
    """A new provider (POST)."""

    id: ProviderId


class ProviderReplace(ProviderFields):
    """A provider's whole description (PUT); `id`, when given, must be the one in the path."""

    id: ProviderId | None = None


# The stored fields a change may touch, in the order the API lists them.
EDITABLE_FIELDS: tuple[str, ...] = tuple(ProviderFields.model_fields)


class ProviderTranslationRead(BaseModel):
    """A provider's texts in one more language."""

    name: str
    purpose: str
    data_shared: dict[str, str]


class ProviderRead(BaseModel):
    """A provider as the registry lists it."""

    id: str
    name: str
    kind: Kind
    purpose: str
    data_shared: list[str]
    category: Category
    countries: list[str]
    transfer_mechanism: TransferMechanism | None
    opt_out_url: str | None
    translations: dict[str, ProviderTranslationRead]
    created_at: str
    updated_at: str


class ProviderPage(BaseModel):
    """A page of providers, ordered by id."""

    items: list[ProviderRead]
    next_cursor: str | None
