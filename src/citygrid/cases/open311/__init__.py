"""Open311 GeoReport v2 under ``/open311/v2/``: the catalogue as services, cases as service
requests, API keys for client applications (see docs/open311.md)."""
