"""Fault suite: crash, database outage, overload and hostile input (pytest -m fault)."""
