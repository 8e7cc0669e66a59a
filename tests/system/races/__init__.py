"""Races on PostgreSQL: threads with their own database connections, released together.

Tests that need row locks are marked `postgres` and skip with a reason on SQLite (one writer
at a time there: nothing races); the others (a step and an event meeting) run everywhere."""
