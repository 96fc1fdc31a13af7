"""The access log: append-only, tamper-evident (RFC 6962 Merkle tree, signed checkpoints)."""
