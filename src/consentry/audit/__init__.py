"""The audit log: who did what among the privacy team's actions, append-only."""
