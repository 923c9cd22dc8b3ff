"""Hypothesis strategies for hostile banditroute requests.

* :func:`message_strategy` builds any protobuf message from its descriptor, with nasty values
  in every field: NaN and infinities, negative and huge numbers, empty, huge, control-character
  and SQL-injection-looking strings, unknown enum numbers, maps and repeated fields.
* :func:`mutated_bytes` takes a serialized message and damages it the way a buggy or hostile
  client would: flipped and inserted bytes, truncation, a string field re-encoded with invalid
  UTF-8 (which grpc's Python deserializer refuses), garbage.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

__all__ = [
    "INJECTION_STRINGS",
    "invalid_utf8_field",
    "message_strategy",
    "mutated_bytes",
    "nasty_floats",
    "nasty_text",
]

FD = _descriptor.FieldDescriptor

#: Strings that would break a query built by string formatting.
INJECTION_STRINGS = (
    "'; DROP TABLE decisions; --",
    "x' OR '1'='1",
    "\"; DELETE FROM outcomes WHERE ''='",
    "default'--",
    "$$; TRUNCATE models; $$",
    "%s%s%s%(x)s",
    "\\x00\\'",
)

_SPECIAL_FLOATS = (
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    -1.0,
    1.0,
    1.0000001,
    -1e-300,
    5e-324,
    1e308,
    -1e308,
    2.0**63,
)


def nasty_floats() -> st.SearchStrategy[float]:
    """Floats biased to NaN, infinities, signs, boundaries and extremes."""
    return st.one_of(
        st.sampled_from(_SPECIAL_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-2.0, max_value=2.0),
    )


def nasty_text(max_size: int = 64) -> st.SearchStrategy[str]:
    """Strings: empty, injection, control characters, lone surrogate-free unicode, long runs."""
    return st.one_of(
        st.just(""),
        st.sampled_from(INJECTION_STRINGS),
        st.text(max_size=max_size),
        st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Zs", "So"]), max_size=8),
        st.builds(lambda c, n: c * n, st.sampled_from("a\x00é😀'"), st.integers(1, 5000)),
    )


_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def _int_strategy(field_type: int) -> st.SearchStrategy[int]:
    low, high = _INT_RANGES[field_type]
    edges = [v for v in (low, high, -1, 0, 1, 2, 100) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _scalar(
    field: _descriptor.FieldDescriptor,
    strings: st.SearchStrategy[str],
    depth: int,
) -> st.SearchStrategy[Any]:
    t = field.type
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return nasty_floats() if t == FD.TYPE_DOUBLE else st.floats(width=32)
    if t in _INT_RANGES:
        return _int_strategy(t)
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_STRING:
        return strings
    if t == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FD.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 50))
    if t == FD.TYPE_MESSAGE:
        assert field.message_type is not None
        return message_strategy(field.message_type, strings=strings, depth=depth + 1)
    raise TypeError(f"unsupported field type {t} of {field.full_name}")


def message_strategy(
    descriptor: _descriptor.Descriptor,
    *,
    strings: st.SearchStrategy[str] | None = None,
    depth: int = 0,
    max_depth: int = 3,
) -> st.SearchStrategy[Message]:
    """Any message of ``descriptor``'s type, each field present or absent, values hostile.

    Parameters
    ----------
    descriptor
        The message type, e.g. ``router_pb2.RouteRequest.DESCRIPTOR``.
    strings
        Strategy for string fields (default :func:`nasty_text`); tests pass one that mixes in
        ids of existing objects so the fuzzer reaches past "not found".
    max_depth
        Nested messages deeper than this are left empty.
    """
    from google.protobuf import message_factory

    strings = strings if strings is not None else nasty_text()
    cls = message_factory.GetMessageClass(descriptor)
    if depth > max_depth:
        return st.just(cls())
    field_strategies: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            field_strategies[field.name] = st.dictionaries(
                _scalar(key_field, strings, depth),
                _scalar(value_field, strings, depth),
                max_size=4,
            )
        elif field.is_repeated:
            field_strategies[field.name] = st.lists(_scalar(field, strings, depth), max_size=4)
        else:
            field_strategies[field.name] = _scalar(field, strings, depth)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for name, strategy in field_strategies.items():
            if not draw(st.booleans()):
                continue
            _assign(message, descriptor.fields_by_name[name], draw(strategy))
        return message

    return build()


def _assign(message: Message, field: _descriptor.FieldDescriptor, value: Any) -> None:
    name = field.name
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        target = getattr(message, name)
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.message_type is not None:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        if field.message_type is not None:
            getattr(message, name).extend(value)
        else:
            getattr(message, name).extend(value)
    elif field.message_type is not None:
        getattr(message, name).CopyFrom(value)
    else:
        setattr(message, name, value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def invalid_utf8_field(field_number: int, payload: bytes = b"\xff\xfe\xc3(") -> bytes:
    """Wire bytes of a length-delimited field ``field_number`` holding invalid UTF-8.

    Appended to a valid message it overrides that string field (last value wins), so the
    message is well-formed protobuf except for the UTF-8 rule proto3 strings must obey.

    >>> invalid_utf8_field(1)
    b'\\n\\x04\\xff\\xfe\\xc3('
    """
    return _varint((field_number << 3) | 2) + _varint(len(payload)) + payload


_INVALID_UTF8 = (b"\xff", b"\xc3(", b"\xed\xa0\x80", b"a\x80b", b"\xf8\x88\x80\x80\x80")


def string_field_numbers(descriptor: _descriptor.Descriptor) -> list[int]:
    """Numbers of the top-level string fields of a message type."""
    return [f.number for f in descriptor.fields if f.type == FD.TYPE_STRING]


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, descriptor: _descriptor.Descriptor) -> bytes:
    """``data`` (a serialized ``descriptor`` message) damaged in one of several ways."""
    strings = string_field_numbers(descriptor)
    kind = draw(
        st.sampled_from(["utf8", "flip", "insert", "truncate", "garbage", "duplicate"])
        if strings
        else st.sampled_from(["flip", "insert", "truncate", "garbage", "duplicate"])
    )
    if kind == "utf8":
        number = draw(st.sampled_from(strings))
        payload = draw(
            st.sampled_from(
                [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"a\x80b", b"\xf8\x88\x80\x80\x80"]
            )
        )
        return data + invalid_utf8_field(number, payload)
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=256))
    if kind == "duplicate":
        return data + data
    if not data:
        return draw(st.binary(min_size=1, max_size=16))
    position = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        value = data[position] ^ draw(st.integers(1, 255))
        return data[:position] + bytes([value]) + data[position + 1 :]
    if kind == "insert":
        return data[:position] + draw(st.binary(min_size=1, max_size=8)) + data[position:]
    return data[:position]
