"""Shared helpers for end-to-end tests: a real remotemedia-server on an ephemeral loopback
port, started, waited on (health SERVING) and stopped cleanly."""
