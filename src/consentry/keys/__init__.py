"""API keys: opaque `csk_` tokens stored only as SHA-256, each with scopes."""
