"""Registered platform systems, the transactional outbox and signed webhook delivery."""
