"""Access: accounts, sessions, API clients, roles, scope, field masks, purposes, consent,
and the gateway through which every read of personal data passes."""
