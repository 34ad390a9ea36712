"""Notifications: decide who hears about a run (``notify:``), queue messages in an outbox table, and
deliver them at least once (webhook, Slack, email, commit status) from a worker that never blocks runs.

A service: it imports the core and the store's schema. Secret *values* never enter a message: a
message names the secrets (HMAC key, Slack URL, API token, SMTP password) its sender resolves when it
sends, and text from the run is masked by the caller's masker before it is queued.
"""
