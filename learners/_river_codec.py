"""Exact, pickle-free encoding of River estimators as JSON-compatible trees (private).

Objects are taken apart with the same ``__reduce_ex__`` protocol pickle uses, but only
whitelisted things are written and rebuilt: classes and functions defined in a ``river.``
module, the builtin containers, numpy arrays and scalars. Floats are written with ``repr`` (which
round-trips exactly); non-finite floats and numpy values are tagged. Dict insertion order and
shared references (``$ref``) are preserved, so a restored model predicts bit-identically and
re-encodes to the same tree.
"""

from __future__ import annotations

import base64
import collections
import copyreg
import importlib
import math
import types
from typing import Any

import numpy as np

__all__ = ["CodecError", "decode", "encode"]

_ALLOWED_PREFIX = "river."
_NEWOBJ: Any = getattr(copyreg, "__newobj__")  # noqa: B009 - not in the typeshed stubs


class CodecError(ValueError):
    """An object cannot be encoded, or a tree cannot be decoded safely."""


def encode(obj: Any) -> Any:
    """Encode ``obj`` (a River estimator or plain data) as a JSON-compatible tree.

    Examples
    --------
    >>> from river import linear_model
    >>> m = linear_model.LinearRegression()
    >>> m.learn_one({"a": 1.0}, 2.0)
    >>> m2 = decode(encode(m))
    >>> m2.predict_one({"a": 0.5}) == m.predict_one({"a": 0.5})
    True
    >>> encode(m2) == encode(m)
    True
    """
    return _Encoder().encode(obj)


def decode(tree: Any) -> Any:
    """Rebuild the object encoded by :func:`encode`."""
    return _Decoder().decode(tree)


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _allowed_module(module: str | None) -> bool:
    return bool(module) and (module or "").startswith(_ALLOWED_PREFIX)


class _Encoder:
    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []

    def _remember(self, obj: Any) -> int | None:
        """Return the ref number if ``obj`` was seen, else register it and return None."""
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = len(self.memo)
        self.keep.append(obj)
        return None

    def encode(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, bool | str):
            return obj
        if type(obj) is int:
            return obj
        if type(obj) is float:
            if math.isfinite(obj):
                return obj
            return {"$float": repr(obj)}
        if isinstance(obj, np.generic):
            return {"$npscalar": obj.dtype.str, "hex": obj.tobytes().hex()}
        # functions and classes are global singletons: by name, never memoised
        if isinstance(obj, types.FunctionType):
            if not _allowed_module(obj.__module__) or "<" in obj.__qualname__:
                raise CodecError(f"cannot serialise function {obj!r}")
            return {"$function": _qualname(obj)}
        if isinstance(obj, type):
            if obj in _BUILTIN_TYPES:
                return {"$type": _BUILTIN_TYPES[obj]}
            if not _allowed_module(obj.__module__):
                raise CodecError(f"cannot serialise class {obj!r}")
            return {"$class": _qualname(obj)}
        ref = self._remember(obj)
        if ref is not None:
            return {"$ref": ref}
        t = type(obj)
        if isinstance(obj, types.MethodType):
            func = obj.__func__
            if not _allowed_module(getattr(func, "__module__", None)):
                raise CodecError(f"cannot serialise method {obj!r}")
            return {"$method": func.__name__, "self": self.encode(obj.__self__)}
        if t is list:
            return {"$list": [self.encode(v) for v in obj]}
        if t is tuple:
            return {"$tuple": [self.encode(v) for v in obj]}
        if t is dict:
            return {"$dict": [[self.encode(k), self.encode(v)] for k, v in obj.items()]}
        if t is set or t is frozenset:
            items = [self.encode(v) for v in _sorted_if_possible(obj)]
            return {"$set" if t is set else "$frozenset": items}
        if t is collections.deque:
            return {"$deque": [self.encode(v) for v in obj], "maxlen": obj.maxlen}
        if t is collections.defaultdict:
            return {
                "$defaultdict": self.encode(obj.default_factory),
                "items": [[self.encode(k), self.encode(v)] for k, v in obj.items()],
            }
        if t is collections.Counter:
            return {"$counter": [[self.encode(k), self.encode(v)] for k, v in obj.items()]}
        if t is np.ndarray:
            arr = np.ascontiguousarray(obj)
            return {
                "$ndarray": arr.dtype.str,
                "shape": list(arr.shape),
                "b64": base64.b64encode(arr.tobytes()).decode("ascii"),
            }
        return self._encode_object(obj)

    def _encode_object(self, obj: Any) -> Any:
        t = type(obj)
        if not _allowed_module(t.__module__):
            raise CodecError(
                f"cannot serialise {t.__module__}.{t.__qualname__}: only River objects and "
                "plain data are supported"
            )
        reduced = obj.__reduce_ex__(4)
        if not isinstance(reduced, tuple):
            raise CodecError(f"cannot serialise {t.__qualname__}")
        func, args, state, listitems, dictitems = (*reduced, None, None, None)[:5]
        self.keep.append(reduced)
        out: dict[str, Any] = {"$object": _qualname(t)}
        if func is _NEWOBJ:
            if args[0] is not t:
                raise CodecError(f"cannot serialise {t.__qualname__}: unexpected reduce")
            out["new"] = [self.encode(a) for a in args[1:]]
        elif func is t:
            out["call"] = [self.encode(a) for a in args]
        else:
            raise CodecError(f"cannot serialise {t.__qualname__}: reduces via {func!r}")
        if state is not None:
            out["state"] = self.encode(state)
        if listitems is not None:
            out["listitems"] = [self.encode(v) for v in listitems]
        if dictitems is not None:
            out["dictitems"] = [[self.encode(k), self.encode(v)] for k, v in dictitems]
        return out


_BUILTIN_TYPES: dict[type, str] = {
    int: "int",
    float: "float",
    list: "list",
    dict: "dict",
    set: "set",
    tuple: "tuple",
    str: "str",
}
_BUILTIN_BY_NAME = {v: k for k, v in _BUILTIN_TYPES.items()}


def _sorted_if_possible(items: Any) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def _resolve(qualname: str, *, want_class: bool) -> Any:
    module_name, _, attr_path = qualname.partition(":")
    if not _allowed_module(module_name) or not attr_path:
        raise CodecError(f"refusing to load {qualname!r}: not a River object")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CodecError(f"cannot load {qualname!r}: {exc}") from None
    if want_class and not isinstance(obj, type):
        raise CodecError(f"{qualname!r} is not a class")
    if not want_class and not isinstance(obj, types.FunctionType):
        raise CodecError(f"{qualname!r} is not a function")
    if not _allowed_module(getattr(obj, "__module__", None)):
        raise CodecError(f"refusing to load {qualname!r}: not defined in River")
    return obj


class _Decoder:
    def __init__(self) -> None:
        self.memo: list[Any] = []

    def _reserve(self) -> int:
        self.memo.append(None)
        return len(self.memo) - 1

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | str | int | float):
            return node
        if not isinstance(node, dict):
            raise CodecError(f"malformed state node of type {type(node).__name__}")
        if "$float" in node:
            value = float(node["$float"])
            if math.isfinite(value):
                raise CodecError("malformed $float node")
            return value
        if "$npscalar" in node:
            return np.frombuffer(bytes.fromhex(node["hex"]), dtype=np.dtype(node["$npscalar"]))[0]
        if "$ref" in node:
            try:
                return self.memo[node["$ref"]]
            except (IndexError, TypeError):
                raise CodecError("malformed $ref node") from None
        if "$function" in node:
            return _resolve(node["$function"], want_class=False)
        if "$class" in node:
            return _resolve(node["$class"], want_class=True)
        if "$type" in node:
            return _BUILTIN_BY_NAME[node["$type"]]
        n = self._reserve()
        if "$method" in node:
            owner = self.decode(node["self"])
            name = node["$method"]
            if not isinstance(name, str) or name.startswith("__"):
                raise CodecError("malformed $method node")
            method = getattr(owner, name)
            if not isinstance(method, types.MethodType):
                raise CodecError(f"{name!r} is not a method")
            self.memo[n] = method
            return method
        if "$list" in node:
            out_list: list[Any] = []
            self.memo[n] = out_list
            out_list.extend(self.decode(v) for v in node["$list"])
            return out_list
        if "$tuple" in node:
            self.memo[n] = tuple(self.decode(v) for v in node["$tuple"])
            return self.memo[n]
        if "$dict" in node:
            out_dict: dict[Any, Any] = {}
            self.memo[n] = out_dict
            for k, v in node["$dict"]:
                key = self.decode(k)
                out_dict[key] = self.decode(v)
            return out_dict
        if "$set" in node or "$frozenset" in node:
            raw_items = node["$set"] if "$set" in node else node["$frozenset"]
            items = [self.decode(v) for v in raw_items]
            self.memo[n] = set(items) if "$set" in node else frozenset(items)
            return self.memo[n]
        if "$deque" in node:
            dq: collections.deque[Any] = collections.deque(maxlen=node["maxlen"])
            self.memo[n] = dq
            dq.extend(self.decode(v) for v in node["$deque"])
            return dq
        if "$defaultdict" in node:
            dd: collections.defaultdict[Any, Any] = collections.defaultdict(
                self.decode(node["$defaultdict"])
            )
            self.memo[n] = dd
            for k, v in node["items"]:
                key = self.decode(k)
                dd[key] = self.decode(v)
            return dd
        if "$counter" in node:
            ct: collections.Counter[Any] = collections.Counter()
            self.memo[n] = ct
            for k, v in node["$counter"]:
                key = self.decode(k)
                ct[key] = self.decode(v)
            return ct
        if "$ndarray" in node:
            raw = base64.b64decode(node["b64"])
            arr = np.frombuffer(raw, dtype=np.dtype(node["$ndarray"])).reshape(node["shape"])
            self.memo[n] = arr.copy()
            return self.memo[n]
        if "$object" in node:
            return self._decode_object(node, n)
        raise CodecError(f"malformed state node with keys {sorted(node)}")

    def _decode_object(self, node: dict[str, Any], n: int) -> Any:
        cls = _resolve(node["$object"], want_class=True)
        if "new" in node:
            args = [self.decode(a) for a in node["new"]]
            obj = cls.__new__(cls, *args)
        else:
            args = [self.decode(a) for a in node["call"]]
            obj = cls(*args)
        self.memo[n] = obj
        if "state" in node:
            state = self.decode(node["state"])
            setstate = getattr(type(obj), "__setstate__", None)
            if setstate is not None and setstate is not getattr(object, "__setstate__", None):
                obj.__setstate__(state)
            else:
                _apply_state(obj, state)
        for v in node.get("listitems") or ():
            obj.append(self.decode(v))
        for k, v in node.get("dictitems") or ():
            key = self.decode(k)
            obj[key] = self.decode(v)
        return obj


def _apply_state(obj: Any, state: Any) -> None:
    slots: dict[str, Any] | None = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        obj.__dict__.update(state)
    if slots:
        for k, v in slots.items():
            object.__setattr__(obj, k, v)
