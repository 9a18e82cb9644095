"""The privacy team's operations on a subject: export, erasure and retention."""
