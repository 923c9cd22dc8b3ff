"""The event log's shared id sequence and the constants writers and followers agree on.

Decisions, outcomes and feedback each carry an ``event_id`` from the one sequence
:data:`EVENT_ID_SEQUENCE`. Every writer allocates the ids of outcomes and feedback (the events
followers read) only while holding the transaction-level advisory lock
:data:`EVENT_LOG_LOCK_KEY` and keeps it until commit, so those ids become visible in id order
even with several writer processes or machines: a follower that has applied every event up to
``n`` may safely read ``event_id > n``. Decisions take their ids without the lock (a follower
reads them only joined to a later event), so workers commit decisions side by side.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Sequence

from banditroute.service.storage.models.base import Base

__all__ = ["EVENTS_CHANNEL", "EVENT_ID_SEQUENCE", "EVENT_LOG_LOCK_KEY"]

#: Key of ``pg_advisory_xact_lock`` serialising the id allocation of outcomes and feedback
#: ("banditrt" as an integer).
EVENT_LOG_LOCK_KEY = 0x62616E6469747274
#: NOTIFY channel; the payload is the largest event id of the committed batch.
EVENTS_CHANNEL = "banditroute_events"
#: The one sequence numbering decisions, outcomes and feedback.
EVENT_ID_SEQUENCE = Sequence("event_ids", metadata=Base.metadata, data_type=BigInteger)
