"""Hostile input on every RPC: random messages, damaged bytes, invalid UTF-8.

Every call must end in a deliberate status (never INTERNAL or UNKNOWN), the server must stay
healthy, and nothing that violates the validation rules may reach the database.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from banditroute.v1 import router_pb2
from tests.fault.fuzzing import (
    BAD_CODES,
    RPCS,
    RawCaller,
    Rpc,
    assert_db_invariants,
    assert_serving,
    db_counts,
    fuzz_settings,
)
from tests.fault.strategies import invalid_utf8_field, message_strategy, mutated_bytes, nasty_text

pytestmark = pytest.mark.fault

#: Examples per RPC; 20 RPCs, so 800 calls per fuzzer.
EXAMPLES_PER_RPC = 40

_FUZZ_SETTINGS = fuzz_settings(EXAMPLES_PER_RPC)


def _admin_metadata(server: Any) -> tuple[tuple[str, str], ...]:
    token = getattr(server, "admin_token", None)
    return (("authorization", f"Bearer {token}"),) if token else ()


def _known_strings(channel: grpc.Channel, raw: RawCaller) -> list[str]:
    """Names of objects that exist (routes, models, a decision), so fuzzing gets past NOT_FOUND."""
    names = ["default", "linucb", "thompson", "epsilon_greedy", "uniform", "fixed", "river"]
    route = next(r for r in RPCS if r.name == "Route")
    code, data, _ = raw(route, router_pb2.RouteRequest(prompt="hello there").SerializeToString())
    if code == grpc.StatusCode.OK and data is not None:
        reply = router_pb2.RouteResponse.FromString(data)
        names += [reply.decision_id, reply.model, *(f.model for f in reply.fallbacks)]
    return names


@pytest.fixture
def fuzz_target(grpc_server: Any) -> Any:
    with grpc.insecure_channel(grpc_server.address) as channel:
        raw = RawCaller(channel)
        yield grpc_server, channel, raw


def _fuzz_messages(
    raw: RawCaller,
    rpc: Rpc,
    metadata: Any,
    strings: st.SearchStrategy[str],
    codes: Counter[grpc.StatusCode],
) -> None:
    @_FUZZ_SETTINGS
    @given(message=message_strategy(rpc.input, strings=strings))
    def check(message: Any) -> None:
        code, _, details = raw(rpc, message.SerializeToString(), metadata)
        codes[code] += 1
        assert code not in BAD_CODES, f"{rpc.name}: {code} {details!r} for {message!r}"[:2000]

    check()


def _fuzz_bytes(raw: RawCaller, rpc: Rpc, metadata: Any, codes: Counter[grpc.StatusCode]) -> None:
    @_FUZZ_SETTINGS
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        message = data.draw(message_strategy(rpc.input, max_depth=1))
        damaged = data.draw(mutated_bytes(message.SerializeToString(), rpc.input))
        code, _, details = raw(rpc, damaged, metadata)
        codes[code] += 1
        assert code not in BAD_CODES, f"{rpc.name}: {code} {details!r} for {damaged!r}"[:2000]

    check()


def test_fuzz_random_messages_never_internal(fuzz_target: Any) -> None:
    server, channel, raw = fuzz_target
    known = _known_strings(channel, raw)
    strings = st.one_of(st.sampled_from(known), nasty_text())
    codes: Counter[grpc.StatusCode] = Counter()
    for rpc in RPCS:
        metadata = _admin_metadata(server) if rpc.admin else ()
        _fuzz_messages(raw, rpc, metadata, strings, codes)
    # Hypothesis stops early only for messages with few distinct values (e.g. one bool).
    assert sum(codes.values()) >= EXAMPLES_PER_RPC * len(RPCS) // 2
    # The fuzzer reached past validation for some calls, or it tested nothing but parsing.
    assert codes[grpc.StatusCode.OK] > 0
    assert_serving(channel)
    assert_db_invariants(server.db_url)


def test_fuzz_damaged_bytes_never_internal(fuzz_target: Any) -> None:
    server, channel, raw = fuzz_target
    codes: Counter[grpc.StatusCode] = Counter()
    for rpc in RPCS:
        metadata = _admin_metadata(server) if rpc.admin else ()
        _fuzz_bytes(raw, rpc, metadata, codes)
    assert sum(codes.values()) >= EXAMPLES_PER_RPC * len(RPCS) // 2
    assert_serving(channel)
    assert_db_invariants(server.db_url)


def test_invalid_utf8_in_any_string_field_is_invalid_argument(fuzz_target: Any) -> None:
    server, channel, raw = fuzz_target
    before = db_counts(server.db_url)
    wrong = []
    tried = 0
    for rpc in RPCS:
        metadata = _admin_metadata(server) if rpc.admin else ()
        for field in rpc.input.fields:
            if field.type != field.TYPE_STRING:
                continue
            code, _, details = raw(rpc, invalid_utf8_field(field.number), metadata)
            tried += 1
            if code != grpc.StatusCode.INVALID_ARGUMENT or "UTF-8" not in details:
                wrong.append((rpc.name, field.name, code, details))
    assert tried >= 20
    assert wrong == []
    assert db_counts(server.db_url) == before
    assert_serving(channel)


@pytest.mark.parametrize(
    ("prompt_bytes", "char", "expected"),
    [
        (1 << 20, "a", grpc.StatusCode.OK),
        ((1 << 20) + 1, "a", grpc.StatusCode.INVALID_ARGUMENT),
        ((1 << 20) + 2, "é", grpc.StatusCode.INVALID_ARGUMENT),  # 2 bytes per character
        # Over the request limit (max_prompt_bytes + 1 MiB): refused before parsing, still
        # INVALID_ARGUMENT naming the limit, never the retryable RESOURCE_EXHAUSTED.
        (3 << 20, "a", grpc.StatusCode.INVALID_ARGUMENT),
        (3 << 20, "😀", grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["at-limit", "one-byte-over", "multibyte-over", "over-request-limit", "emoji-over-limit"],
)
def test_huge_prompts_get_clear_statuses(
    fuzz_target: Any, prompt_bytes: int, char: str, expected: grpc.StatusCode
) -> None:
    server, channel, raw = fuzz_target
    route = next(r for r in RPCS if r.name == "Route")
    prompt = char * (prompt_bytes // len(char.encode()))
    before = db_counts(server.db_url)["decisions"]
    code, _, details = raw(route, router_pb2.RouteRequest(prompt=prompt).SerializeToString())
    assert code == expected, details
    assert_serving(channel)
    written = 1 if expected == grpc.StatusCode.OK else 0
    server.sync()  # Route's decision commits after its answer
    assert db_counts(server.db_url)["decisions"] == before + written
