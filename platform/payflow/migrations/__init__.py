"""Versioned SQL migrations (V001__name.sql …), applied in order by payflow.db.migrate."""
