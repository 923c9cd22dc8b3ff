"""Alembic migrations of the banditroute schema (run them with ``banditroute db upgrade``)."""
