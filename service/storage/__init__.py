"""Storage: SQLAlchemy models, repositories, the group-commit writer, the event-log reader,
migrations and the embedded PostgreSQL."""

from banditroute.service.storage.database import (
    check_schema,
    create_engine,
    schema_problem,
    session_factory,
)
from banditroute.service.storage.embedded import EmbeddedPostgres
from banditroute.service.storage.events import (
    LearningEvent,
    Listener,
    read_events,
    read_events_async,
)
from banditroute.service.storage.ids import decision_created_at, new_decision_id, parse_decision_id
from banditroute.service.storage.rows import DecisionRow
from banditroute.service.storage.writer import (
    GroupCommitWriter,
    WriteResult,
    WriterLimits,
    WriteStatus,
)

__all__ = [
    "DecisionRow",
    "EmbeddedPostgres",
    "GroupCommitWriter",
    "LearningEvent",
    "Listener",
    "WriteResult",
    "WriteStatus",
    "WriterLimits",
    "check_schema",
    "create_engine",
    "decision_created_at",
    "new_decision_id",
    "parse_decision_id",
    "read_events",
    "read_events_async",
    "schema_problem",
    "session_factory",
]
