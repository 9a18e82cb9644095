"""Every table of the service: importing this module registers them all on `Base.metadata`."""

from consentry.consent.models import ConsentRecord, ConsentState
from consentry.db import Base
from consentry.events.models import Event
from consentry.keys.models import ApiKey

__all__ = ["ApiKey", "Base", "ConsentRecord", "ConsentState", "Event"]
