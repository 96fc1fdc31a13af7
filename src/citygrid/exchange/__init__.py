"""Data exchange: members, catalogue, datasets, life events, outbox, reactions."""
