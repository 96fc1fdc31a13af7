"""Shared plumbing: settings, database, errors, i18n and the web layout."""
