"""SQLAlchemy models, one table per module; ``Base.metadata`` describes the whole schema."""

from banditroute.service.storage.models.api_key import ApiKey
from banditroute.service.storage.models.base import (
    NAMING_CONVENTION,
    Base,
    CreatedAtMixin,
    TimestampedMixin,
)
from banditroute.service.storage.models.config_change import CONFIG_CHANNEL, ConfigChange
from banditroute.service.storage.models.decision import Decision
from banditroute.service.storage.models.event_log import (
    EVENT_ID_SEQUENCE,
    EVENT_LOG_LOCK_KEY,
    EVENTS_CHANNEL,
)
from banditroute.service.storage.models.experiment import Experiment
from banditroute.service.storage.models.experiment_event import ExperimentEvent
from banditroute.service.storage.models.experiment_variant import ExperimentVariant
from banditroute.service.storage.models.feedback import Feedback
from banditroute.service.storage.models.model import Model
from banditroute.service.storage.models.outcome import Outcome
from banditroute.service.storage.models.policy import Policy
from banditroute.service.storage.models.policy_snapshot import PolicySnapshot
from banditroute.service.storage.models.request_id import RequestId
from banditroute.service.storage.models.route import Route

__all__ = [
    "CONFIG_CHANNEL",
    "EVENTS_CHANNEL",
    "EVENT_ID_SEQUENCE",
    "EVENT_LOG_LOCK_KEY",
    "NAMING_CONVENTION",
    "ApiKey",
    "Base",
    "ConfigChange",
    "CreatedAtMixin",
    "Decision",
    "Experiment",
    "ExperimentEvent",
    "ExperimentVariant",
    "Feedback",
    "Model",
    "Outcome",
    "Policy",
    "PolicySnapshot",
    "RequestId",
    "Route",
    "TimestampedMixin",
]
