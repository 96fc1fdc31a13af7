"""Webhook subscriptions for department systems: a department's system registers a topic, a
callback URL and a secret; citygrid verifies the callback with a WebSub-style challenge, fans
every matching outbox entry out into one delivery per subscription (the payload filtered by
the department's access policy) and POSTs it, HMAC-SHA256 signed, with retries, a dead-letter
state, per-subject order, replay and a delivery log. See docs/exchange.md, "Webhooks"."""
