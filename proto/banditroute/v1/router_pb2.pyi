from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteRequest(_message.Message):
    __slots__ = ("prompt", "candidates", "route", "tenant", "unit_id", "numeric_context", "categorical_context", "max_cost_usd", "request_id", "fresh_request_id")
    class NumericContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CategoricalContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FRESH_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    route: str
    tenant: str
    unit_id: str
    numeric_context: _containers.ScalarMap[str, float]
    categorical_context: _containers.ScalarMap[str, str]
    max_cost_usd: float
    request_id: str
    fresh_request_id: bool
    def __init__(self, prompt: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ..., route: _Optional[str] = ..., tenant: _Optional[str] = ..., unit_id: _Optional[str] = ..., numeric_context: _Optional[_Mapping[str, float]] = ..., categorical_context: _Optional[_Mapping[str, str]] = ..., max_cost_usd: _Optional[float] = ..., request_id: _Optional[str] = ..., fresh_request_id: _Optional[bool] = ...) -> None: ...

class RankedModel(_message.Message):
    __slots__ = ("model", "score", "probability", "estimated_cost_usd")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    model: str
    score: float
    probability: float
    estimated_cost_usd: float
    def __init__(self, model: _Optional[str] = ..., score: _Optional[float] = ..., probability: _Optional[float] = ..., estimated_cost_usd: _Optional[float] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("decision_id", "model", "propensity", "fallbacks", "score", "estimated_cost_usd", "policy", "policy_version", "experiment", "variant", "replayed", "route", "pacing", "pacing_cost_weight")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    PACING_FIELD_NUMBER: _ClassVar[int]
    PACING_COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    model: str
    propensity: float
    fallbacks: _containers.RepeatedCompositeFieldContainer[RankedModel]
    score: float
    estimated_cost_usd: float
    policy: str
    policy_version: int
    experiment: str
    variant: str
    replayed: bool
    route: str
    pacing: str
    pacing_cost_weight: float
    def __init__(self, decision_id: _Optional[str] = ..., model: _Optional[str] = ..., propensity: _Optional[float] = ..., fallbacks: _Optional[_Iterable[_Union[RankedModel, _Mapping]]] = ..., score: _Optional[float] = ..., estimated_cost_usd: _Optional[float] = ..., policy: _Optional[str] = ..., policy_version: _Optional[int] = ..., experiment: _Optional[str] = ..., variant: _Optional[str] = ..., replayed: _Optional[bool] = ..., route: _Optional[str] = ..., pacing: _Optional[str] = ..., pacing_cost_weight: _Optional[float] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("decision_id", "quality", "success", "input_tokens", "output_tokens", "cost_usd", "latency_ms", "error")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    quality: float
    success: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    error: str
    def __init__(self, decision_id: _Optional[str] = ..., quality: _Optional[float] = ..., success: _Optional[bool] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., latency_ms: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class RecordOutcomeResponse(_message.Message):
    __slots__ = ("reward", "event_id", "duplicate")
    REWARD_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    reward: float
    event_id: int
    duplicate: bool
    def __init__(self, reward: _Optional[float] = ..., event_id: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class RecordOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[RecordOutcomeRequest]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[RecordOutcomeRequest, _Mapping]]] = ...) -> None: ...

class OutcomeResult(_message.Message):
    __slots__ = ("decision_id", "code", "message", "reward", "event_id", "duplicate")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    code: int
    message: str
    reward: float
    event_id: int
    duplicate: bool
    def __init__(self, decision_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., reward: _Optional[float] = ..., event_id: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class RecordOutcomesResponse(_message.Message):
    __slots__ = ("results", "accepted", "rejected")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[OutcomeResult]
    accepted: int
    rejected: int
    def __init__(self, results: _Optional[_Iterable[_Union[OutcomeResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("decision_id", "rating", "comment", "source", "feedback_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    rating: float
    comment: str
    source: str
    feedback_id: str
    def __init__(self, decision_id: _Optional[str] = ..., rating: _Optional[float] = ..., comment: _Optional[str] = ..., source: _Optional[str] = ..., feedback_id: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("reward", "event_id", "duplicate")
    REWARD_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    reward: float
    event_id: int
    duplicate: bool
    def __init__(self, reward: _Optional[float] = ..., event_id: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...
