import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExperimentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_STATE_UNSPECIFIED: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_DRAFT: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_RUNNING: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_PAUSED: _ClassVar[ExperimentState]
    EXPERIMENT_STATE_STOPPED: _ClassVar[ExperimentState]
EXPERIMENT_STATE_UNSPECIFIED: ExperimentState
EXPERIMENT_STATE_DRAFT: ExperimentState
EXPERIMENT_STATE_RUNNING: ExperimentState
EXPERIMENT_STATE_PAUSED: ExperimentState
EXPERIMENT_STATE_STOPPED: ExperimentState

class Model(_message.Message):
    __slots__ = ("id", "provider", "input_usd_per_mtok", "output_usd_per_mtok", "enabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    enabled: bool
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., input_usd_per_mtok: _Optional[float] = ..., output_usd_per_mtok: _Optional[float] = ..., enabled: _Optional[bool] = ...) -> None: ...

class PutModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("include_disabled",)
    INCLUDE_DISABLED_FIELD_NUMBER: _ClassVar[int]
    include_disabled: bool
    def __init__(self, include_disabled: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class RewardWeights(_message.Message):
    __slots__ = ("cost_weight", "latency_weight", "feedback_weight")
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    cost_weight: float
    latency_weight: float
    feedback_weight: float
    def __init__(self, cost_weight: _Optional[float] = ..., latency_weight: _Optional[float] = ..., feedback_weight: _Optional[float] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("name", "version", "algorithm", "hyperparameters", "reward", "created_at", "seed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    algorithm: str
    hyperparameters: _struct_pb2.Struct
    reward: RewardWeights
    created_at: _timestamp_pb2.Timestamp
    seed: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., algorithm: _Optional[str] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reward: _Optional[_Union[RewardWeights, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class PutPolicyRequest(_message.Message):
    __slots__ = ("name", "algorithm", "hyperparameters", "reward", "seed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    name: str
    algorithm: str
    hyperparameters: _struct_pb2.Struct
    reward: RewardWeights
    seed: int
    def __init__(self, name: _Optional[str] = ..., algorithm: _Optional[str] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reward: _Optional[_Union[RewardWeights, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ...) -> None: ...

class GetPolicyStateRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ArmState(_message.Message):
    __slots__ = ("model", "updates", "mean_reward")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    MEAN_REWARD_FIELD_NUMBER: _ClassVar[int]
    model: str
    updates: int
    mean_reward: float
    def __init__(self, model: _Optional[str] = ..., updates: _Optional[int] = ..., mean_reward: _Optional[float] = ...) -> None: ...

class PolicyState(_message.Message):
    __slots__ = ("policy", "last_event_id", "updates", "arms", "groups", "group_prior")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_PRIOR_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    last_event_id: int
    updates: int
    arms: _containers.RepeatedCompositeFieldContainer[ArmState]
    groups: int
    group_prior: float
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ..., last_event_id: _Optional[int] = ..., updates: _Optional[int] = ..., arms: _Optional[_Iterable[_Union[ArmState, _Mapping]]] = ..., groups: _Optional[int] = ..., group_prior: _Optional[float] = ...) -> None: ...

class RouteConfig(_message.Message):
    __slots__ = ("tenant", "name", "policy", "policy_version", "models", "experiment", "budget_per_request_usd", "budget_usd", "budget_period", "budget_hard_cap")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_REQUEST_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PERIOD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_HARD_CAP_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    policy: str
    policy_version: int
    models: _containers.RepeatedScalarFieldContainer[str]
    experiment: str
    budget_per_request_usd: float
    budget_usd: float
    budget_period: str
    budget_hard_cap: bool
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., policy: _Optional[str] = ..., policy_version: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ..., experiment: _Optional[str] = ..., budget_per_request_usd: _Optional[float] = ..., budget_usd: _Optional[float] = ..., budget_period: _Optional[str] = ..., budget_hard_cap: _Optional[bool] = ...) -> None: ...

class PutRouteRequest(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: RouteConfig
    def __init__(self, route: _Optional[_Union[RouteConfig, _Mapping]] = ...) -> None: ...

class ListRoutesRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListRoutesResponse(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RouteConfig]
    def __init__(self, routes: _Optional[_Iterable[_Union[RouteConfig, _Mapping]]] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("tenant", "label")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    label: str
    def __init__(self, tenant: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("key_id", "key", "tenant")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    key: str
    tenant: str
    def __init__(self, key_id: _Optional[str] = ..., key: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Variant(_message.Message):
    __slots__ = ("name", "policy", "policy_version", "weight", "shadow", "control")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy: str
    policy_version: int
    weight: float
    shadow: bool
    control: bool
    def __init__(self, name: _Optional[str] = ..., policy: _Optional[str] = ..., policy_version: _Optional[int] = ..., weight: _Optional[float] = ..., shadow: _Optional[bool] = ..., control: _Optional[bool] = ...) -> None: ...

class Guardrail(_message.Message):
    __slots__ = ("max_reward_drop", "max_cost_increase", "confidence", "min_samples")
    MAX_REWARD_DROP_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_INCREASE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    max_reward_drop: float
    max_cost_increase: float
    confidence: float
    min_samples: int
    def __init__(self, max_reward_drop: _Optional[float] = ..., max_cost_increase: _Optional[float] = ..., confidence: _Optional[float] = ..., min_samples: _Optional[int] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("name", "tenant", "route", "state", "variants", "salt", "guardrail", "stop_reason", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    route: str
    state: ExperimentState
    variants: _containers.RepeatedCompositeFieldContainer[Variant]
    salt: str
    guardrail: Guardrail
    stop_reason: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., route: _Optional[str] = ..., state: _Optional[_Union[ExperimentState, str]] = ..., variants: _Optional[_Iterable[_Union[Variant, _Mapping]]] = ..., salt: _Optional[str] = ..., guardrail: _Optional[_Union[Guardrail, _Mapping]] = ..., stop_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateExperimentRequest(_message.Message):
    __slots__ = ("name", "tenant", "route", "variants", "guardrail", "salt", "start", "actor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    route: str
    variants: _containers.RepeatedCompositeFieldContainer[Variant]
    guardrail: Guardrail
    salt: str
    start: bool
    actor: str
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., route: _Optional[str] = ..., variants: _Optional[_Iterable[_Union[Variant, _Mapping]]] = ..., guardrail: _Optional[_Union[Guardrail, _Mapping]] = ..., salt: _Optional[str] = ..., start: _Optional[bool] = ..., actor: _Optional[str] = ...) -> None: ...

class RampExperimentRequest(_message.Message):
    __slots__ = ("name", "weights", "actor")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    weights: _containers.ScalarMap[str, float]
    actor: str
    def __init__(self, name: _Optional[str] = ..., weights: _Optional[_Mapping[str, float]] = ..., actor: _Optional[str] = ...) -> None: ...

class SetExperimentStateRequest(_message.Message):
    __slots__ = ("name", "state", "actor", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: ExperimentState
    actor: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[ExperimentState, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PromoteVariantRequest(_message.Message):
    __slots__ = ("name", "variant", "actor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    variant: str
    actor: str
    def __init__(self, name: _Optional[str] = ..., variant: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class RollbackExperimentRequest(_message.Message):
    __slots__ = ("name", "actor", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    actor: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetExperimentStatusRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ("route", "tenant")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    route: str
    tenant: str
    def __init__(self, route: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments",)
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ...) -> None: ...

class Estimate(_message.Message):
    __slots__ = ("value", "ci_low", "ci_high", "n")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    value: float
    ci_low: float
    ci_high: float
    n: int
    def __init__(self, value: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., n: _Optional[int] = ...) -> None: ...

class VariantStatus(_message.Message):
    __slots__ = ("variant", "shadow", "control", "stopped", "stop_reason", "decisions", "outcomes", "reward", "quality", "cost_usd", "latency_p50_ms", "latency_p95_ms", "reward_diff_vs_control", "p_value", "ips", "snips", "dr", "spend_usd", "spend_per_request_usd", "period_spend_usd", "budget_share")
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    REWARD_DIFF_VS_CONTROL_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    SNIPS_FIELD_NUMBER: _ClassVar[int]
    DR_FIELD_NUMBER: _ClassVar[int]
    SPEND_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_PER_REQUEST_USD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_SPEND_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_SHARE_FIELD_NUMBER: _ClassVar[int]
    variant: str
    shadow: bool
    control: bool
    stopped: bool
    stop_reason: str
    decisions: int
    outcomes: int
    reward: Estimate
    quality: Estimate
    cost_usd: Estimate
    latency_p50_ms: float
    latency_p95_ms: float
    reward_diff_vs_control: Estimate
    p_value: float
    ips: Estimate
    snips: Estimate
    dr: Estimate
    spend_usd: float
    spend_per_request_usd: float
    period_spend_usd: float
    budget_share: float
    def __init__(self, variant: _Optional[str] = ..., shadow: _Optional[bool] = ..., control: _Optional[bool] = ..., stopped: _Optional[bool] = ..., stop_reason: _Optional[str] = ..., decisions: _Optional[int] = ..., outcomes: _Optional[int] = ..., reward: _Optional[_Union[Estimate, _Mapping]] = ..., quality: _Optional[_Union[Estimate, _Mapping]] = ..., cost_usd: _Optional[_Union[Estimate, _Mapping]] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., reward_diff_vs_control: _Optional[_Union[Estimate, _Mapping]] = ..., p_value: _Optional[float] = ..., ips: _Optional[_Union[Estimate, _Mapping]] = ..., snips: _Optional[_Union[Estimate, _Mapping]] = ..., dr: _Optional[_Union[Estimate, _Mapping]] = ..., spend_usd: _Optional[float] = ..., spend_per_request_usd: _Optional[float] = ..., period_spend_usd: _Optional[float] = ..., budget_share: _Optional[float] = ...) -> None: ...

class ExperimentStatus(_message.Message):
    __slots__ = ("experiment", "variants", "method", "budget_per_request_usd", "budget_usd", "budget_period", "period_start")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_REQUEST_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    variants: _containers.RepeatedCompositeFieldContainer[VariantStatus]
    method: str
    budget_per_request_usd: float
    budget_usd: float
    budget_period: str
    period_start: _timestamp_pb2.Timestamp
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[VariantStatus, _Mapping]]] = ..., method: _Optional[str] = ..., budget_per_request_usd: _Optional[float] = ..., budget_usd: _Optional[float] = ..., budget_period: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
