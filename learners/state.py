"""Versioned, pickle-free snapshots of policies.

Layout of a snapshot::

    b"BRSTATE\\0"                 8-byte magic
    uint32 little-endian          length of the JSON header
    JSON header (UTF-8)           format_version, kind, algorithm, dim, seed, hyperparameters,
                                  plain values, and an index of the arrays
    array bytes                   every numpy array, raw little-endian, one after another

Floats in the header are written with ``repr`` (exact), River models with the whitelisted
encoder of :mod:`banditroute.learners._river_codec`, and the random generator's full state is
included, so ``loads(dumps(p))`` behaves bit-identically to ``p`` and dumps to the same bytes. A
snapshot from a newer format version, or anything that is not a snapshot, raises
:class:`StateFormatError`. Replaying one event log gives identical bytes on one platform; numpy's
BLAS and SIMD kernels may round differently on another CPU or BLAS build, so replicas that must
agree bit for bit should run the same build (or restore from a snapshot).

Examples
--------
>>> from banditroute.learners import LinUCB
>>> p = LinUCB(["a", "b"], dim=3, seed=5).update([1.0, 2.0, 3.0], "a", 0.5)
>>> data = dumps(p)
>>> q = loads(data)
>>> dumps(q) == data, q.select([0.0, 1.0, 0.0]) == p.select([0.0, 1.0, 0.0])
(True, True)
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from banditroute.learners.base import Policy

__all__ = ["FORMAT_VERSION", "StateFormatError", "dumps", "loads"]

FORMAT_VERSION = 1
_MAGIC = b"BRSTATE\x00"
_LEN = struct.Struct("<I")


class StateFormatError(ValueError):
    """The bytes are not a snapshot this release can read."""


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Write ``header`` plus ``arrays`` in the snapshot container (used by other learners)."""
    index = []
    chunks = []
    offset = 0
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        raw = arr.tobytes()
        index.append([name, arr.dtype.str, list(arr.shape), offset, len(raw)])
        chunks.append(raw)
        offset += len(raw)
    full = {"format_version": FORMAT_VERSION, **header, "arrays": index}
    text = json.dumps(full, sort_keys=True, separators=(",", ":"), allow_nan=False)
    head = text.encode("utf-8")
    return b"".join([_MAGIC, _LEN.pack(len(head)), head, *chunks])


def unpack(data: Any, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a container written by :func:`pack`, checking magic, version and ``kind``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 12 or not data.startswith(_MAGIC):
        raise StateFormatError("not a banditroute state snapshot (bad magic bytes)")
    (n,) = _LEN.unpack_from(data, 8)
    try:
        header = json.loads(data[12 : 12 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFormatError(f"corrupt state snapshot header: {exc}") from None
    if not isinstance(header, dict):
        raise StateFormatError("corrupt state snapshot header")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateFormatError("state snapshot has no format version")
    if version > FORMAT_VERSION:
        raise StateFormatError(
            f"state snapshot format version {version} is newer than this release supports "
            f"(up to {FORMAT_VERSION}); upgrade banditroute to load it"
        )
    if version < 1:
        raise StateFormatError(f"unknown state snapshot format version {version}")
    if header.get("kind") != kind:
        raise StateFormatError(f"state snapshot holds a {header.get('kind')!r}, not a {kind!r}")
    body = data[12 + n :]
    arrays: dict[str, np.ndarray] = {}
    try:
        for name, dtype, shape, offset, nbytes in header["arrays"]:
            if offset + nbytes > len(body):
                raise StateFormatError("state snapshot is truncated")
            arr = np.frombuffer(body, dtype=np.dtype(dtype), count=-1, offset=offset)
            arrays[name] = arr[: int(np.prod(shape, dtype=np.int64))].reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateFormatError):
            raise
        raise StateFormatError(f"corrupt state snapshot array index: {exc}") from None
    return header, arrays


def dumps(policy: Policy) -> bytes:
    """Serialise ``policy`` (hyperparameters and full learned state) to bytes.

    Examples
    --------
    >>> from banditroute.learners import make_policy
    >>> data = dumps(make_policy("thompson", ["a", "b"], dim=2, seed=1))
    >>> data[:8]
    b'BRSTATE\\x00'
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
    state = policy._get_state()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    values = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    header = {
        "kind": "policy",
        "algorithm": policy.algorithm,
        "dim": policy.dim,
        "seed": policy.seed,
        "hyperparameters": policy.hyperparameters,
        "values": values,
    }
    return pack(header, arrays)


def loads(data: bytes) -> Policy:
    """Rebuild a policy written by :func:`dumps`.

    Raises
    ------
    StateFormatError
        Not a snapshot, a corrupt one, or one from a newer format version.

    Examples
    --------
    >>> from banditroute.learners import make_policy
    >>> p = make_policy("epsilon_greedy", ["a", "b"], dim=2, seed=1).update([1, 2], "b", 1.0)
    >>> loads(dumps(p)).summary()["b"]["updates"]
    1
    >>> loads(b"pickle?")
    Traceback (most recent call last):
    ...
    banditroute.learners.state.StateFormatError: not a banditroute state snapshot (bad magic bytes)
    """
    from banditroute.learners.registry import ALGORITHMS

    header, arrays = unpack(data, "policy")
    algorithm = header.get("algorithm")
    cls = ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if cls is None:
        raise StateFormatError(f"state snapshot has unknown algorithm {algorithm!r}")
    try:
        values = header["values"]
        hyperparameters = header["hyperparameters"]
        policy = cls(values["arm_names"], header["dim"], header["seed"], **hyperparameters)
        policy._set_state({**values, **arrays})
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateFormatError):
            raise
        raise StateFormatError(f"corrupt {algorithm} state snapshot: {exc}") from None
    return policy
