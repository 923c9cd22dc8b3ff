"""Exact, pickle-free encoding of River estimators as JSON-compatible trees (private).

Objects are taken apart with the same ``__reduce_ex__`` protocol pickle uses, but only
whitelisted things are written and rebuilt: classes and functions defined in a ``river.``
module, bound methods of such objects, the builtin containers, numpy arrays and scalars. Floats
are written with ``repr`` (which round-trips exactly); non-finite floats and numpy values are
tagged. Dict insertion order and shared references are preserved, so a restored model predicts
bit-identically and re-encodes to the same tree.

The tree is ``{"classes": [...], "tree": node}``; a node is a JSON scalar or a one-letter-tagged
object (``o`` object, ``d`` dict, ``l`` list, ``u`` tuple, ``r`` reference, ...). Class names are
listed once in ``classes`` and referred to by index, which keeps large models (Hoeffding trees
hold thousands of small statistics) compact.
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


class CodecError(ValueError):
    """An object cannot be encoded, or a tree cannot be decoded safely."""


def encode(obj: Any) -> dict[str, Any]:
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
    enc = _Encoder()
    tree = enc.encode(obj)
    return {"classes": enc.classes, "tree": tree}


def decode(data: Any) -> Any:
    """Rebuild the object encoded by :func:`encode`."""
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise CodecError("malformed encoded object")
    classes = [_resolve(name, want_class=True) for name in data["classes"]]
    return _Decoder(classes).decode(data.get("tree"))


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _allowed_module(module: Any) -> bool:
    return isinstance(module, str) and module.startswith(_ALLOWED_PREFIX)


def _sorted_if_possible(items: Any) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        return list(items)


class _Encoder:
    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []
        self.classes: list[str] = []
        self.class_index: dict[type, int] = {}

    def _remember(self, obj: Any) -> int | None:
        """Return the ref number if ``obj`` was seen, else register it and return None."""
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = len(self.memo)
        self.keep.append(obj)
        return None

    def _pairs(self, items: Any) -> list[list[Any]]:
        return [[self.encode(k), self.encode(v)] for k, v in items]

    def encode(self, obj: Any) -> Any:
        t = type(obj)
        if obj is None or t is bool or t is str or t is int:
            return obj
        if t is float:
            return obj if math.isfinite(obj) else {"f": repr(obj)}
        if isinstance(obj, np.generic):
            return {"g": obj.dtype.str, "h": obj.tobytes().hex()}
        # functions and classes are global singletons: by name, never memoised
        if isinstance(obj, types.FunctionType):
            if not _allowed_module(obj.__module__) or "<" in obj.__qualname__:
                raise CodecError(f"cannot serialise function {obj!r}")
            return {"fn": _qualname(obj)}
        if isinstance(obj, type):
            if obj in _BUILTIN_TYPES:
                return {"t": _BUILTIN_TYPES[obj]}
            if not _allowed_module(obj.__module__):
                raise CodecError(f"cannot serialise class {obj!r}")
            return {"c": _qualname(obj)}
        ref = self._remember(obj)
        if ref is not None:
            return {"r": ref}
        if isinstance(obj, types.MethodType):
            if not _allowed_module(getattr(obj.__func__, "__module__", None)):
                raise CodecError(f"cannot serialise method {obj!r}")
            return {"m": obj.__func__.__name__, "s": self.encode(obj.__self__)}
        if t is list:
            return {"l": [self.encode(v) for v in obj]}
        if t is tuple:
            return {"u": [self.encode(v) for v in obj]}
        if t is dict:
            return {"d": self._pairs(obj.items())}
        if t is set:
            return {"S": [self.encode(v) for v in _sorted_if_possible(obj)]}
        if t is frozenset:
            return {"F": [self.encode(v) for v in _sorted_if_possible(obj)]}
        if t is collections.deque:
            return {"q": [self.encode(v) for v in obj], "n": obj.maxlen}
        if t is collections.defaultdict:
            return {"dd": self.encode(obj.default_factory), "i": self._pairs(obj.items())}
        if t is collections.Counter:
            return {"C": self._pairs(obj.items())}
        if t is np.ndarray:
            arr = np.ascontiguousarray(obj)
            raw = base64.b64encode(arr.tobytes()).decode("ascii")
            return {"a": arr.dtype.str, "shape": list(arr.shape), "b64": raw}
        return self._encode_object(obj, t)

    def _attrs(self, state: Any) -> dict[str, Any] | None:
        # Sorted: the JSON is written with sorted keys and the decoder numbers shared
        # references in reading order, so both must walk attributes in the same order.
        if type(state) is dict and all(type(k) is str for k in state):
            return {k: self.encode(state[k]) for k in sorted(state)}
        return None

    def _encode_object(self, obj: Any, t: type) -> Any:
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
        index = self.class_index.get(t)
        if index is None:
            index = self.class_index[t] = len(self.classes)
            self.classes.append(_qualname(t))
        out: dict[str, Any] = {"o": index}
        if func is _NEWOBJ:
            if args[0] is not t:
                raise CodecError(f"cannot serialise {t.__qualname__}: unexpected reduce")
            if len(args) > 1:
                out["n"] = [self.encode(a) for a in args[1:]]
        elif func is t:
            out["k"] = [self.encode(a) for a in args]
        else:
            raise CodecError(f"cannot serialise {t.__qualname__}: reduces via {func!r}")
        # Encoding order (args, state, slots, items) is the decoder's reading order.
        if state is not None:
            slots = None
            if type(state) is tuple and len(state) == 2 and type(state[1]) is dict:
                state, slots = state
            if state is not None:
                self.keep.append(state)
                attrs = self._attrs(state)
                if attrs is not None:
                    out["a"] = attrs
                else:
                    out["s"] = self.encode(state)
            if slots is not None:
                self.keep.append(slots)
                out["z"] = self._attrs(slots)
                if out["z"] is None:
                    raise CodecError(f"cannot serialise {t.__qualname__}: odd slots state")
        if listitems is not None:
            out["li"] = [self.encode(v) for v in listitems]
        if dictitems is not None:
            out["di"] = self._pairs(dictitems)
        return out


def _resolve(qualname: Any, *, want_class: bool) -> Any:
    if not isinstance(qualname, str):
        raise CodecError("malformed class or function name")
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
    def __init__(self, classes: list[type]) -> None:
        self.classes = classes
        self.memo: list[Any] = []

    def _pairs(self, items: Any) -> list[tuple[Any, Any]]:
        out = []
        for k, v in items:
            key = self.decode(k)
            out.append((key, self.decode(v)))
        return out

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | str | int | float):
            return node
        if not isinstance(node, dict):
            raise CodecError(f"malformed state node of type {type(node).__name__}")
        try:
            return self._decode(node)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            if isinstance(exc, CodecError):
                raise
            raise CodecError(f"malformed state node: {exc!r}") from None

    def _decode(self, node: dict[str, Any]) -> Any:
        if "o" in node:
            return self._decode_object(node)
        if "r" in node:
            return self.memo[node["r"]]
        if "f" in node:
            value = float(node["f"])
            if math.isfinite(value):
                raise CodecError("malformed float node")
            return value
        if "g" in node:
            return np.frombuffer(bytes.fromhex(node["h"]), dtype=np.dtype(node["g"]))[0]
        if "fn" in node:
            return _resolve(node["fn"], want_class=False)
        if "c" in node:
            return _resolve(node["c"], want_class=True)
        if "t" in node:
            return _BUILTIN_BY_NAME[node["t"]]
        n = len(self.memo)
        self.memo.append(None)
        if "m" in node:
            owner = self.decode(node["s"])
            name = node["m"]
            if not isinstance(name, str) or name.startswith("__"):
                raise CodecError("malformed method node")
            method = getattr(owner, name)
            if not isinstance(method, types.MethodType):
                raise CodecError(f"{name!r} is not a method")
            self.memo[n] = method
            return method
        if "d" in node:
            out_dict: dict[Any, Any] = {}
            self.memo[n] = out_dict
            out_dict.update(self._pairs(node["d"]))
            return out_dict
        if "l" in node:
            out_list: list[Any] = []
            self.memo[n] = out_list
            out_list.extend(self.decode(v) for v in node["l"])
            return out_list
        if "u" in node:
            self.memo[n] = tuple(self.decode(v) for v in node["u"])
        elif "S" in node:
            self.memo[n] = {self.decode(v) for v in node["S"]}
        elif "F" in node:
            self.memo[n] = frozenset(self.decode(v) for v in node["F"])
        elif "q" in node:
            dq: collections.deque[Any] = collections.deque(maxlen=node["n"])
            self.memo[n] = dq
            dq.extend(self.decode(v) for v in node["q"])
        elif "dd" in node:
            dd: collections.defaultdict[Any, Any] = collections.defaultdict(
                self.decode(node["dd"])
            )
            self.memo[n] = dd
            dd.update(self._pairs(node["i"]))
        elif "C" in node:
            ct: collections.Counter[Any] = collections.Counter()
            self.memo[n] = ct
            for k, v in self._pairs(node["C"]):
                ct[k] = v
        elif "a" in node:
            raw = base64.b64decode(node["b64"])
            arr = np.frombuffer(raw, dtype=np.dtype(node["a"])).reshape(node["shape"])
            self.memo[n] = arr.copy()
        else:
            raise CodecError(f"malformed state node with keys {sorted(node)}")
        return self.memo[n]

    def _decode_object(self, node: dict[str, Any]) -> Any:
        cls = self.classes[node["o"]]
        n = len(self.memo)
        self.memo.append(None)
        if "k" in node:
            obj = cls(*[self.decode(a) for a in node["k"]])
        else:
            obj = cls.__new__(cls, *[self.decode(a) for a in node.get("n", ())])
        self.memo[n] = obj
        if "a" in node or "s" in node:
            if "a" in node:
                state = {k: self.decode(v) for k, v in node["a"].items()}
            else:
                state = self.decode(node["s"])
            setstate = getattr(type(obj), "__setstate__", None)
            if setstate is not None and setstate is not getattr(object, "__setstate__", None):
                obj.__setstate__(state if "z" not in node else (state, self._slots(node)))
            else:
                if state:
                    obj.__dict__.update(state)
                if "z" in node:
                    self._set_slots(obj, node)
        elif "z" in node:
            self._set_slots(obj, node)
        for v in node.get("li") or ():
            obj.append(self.decode(v))
        for k, v in self._pairs(node.get("di") or ()):
            obj[k] = v
        return obj

    def _slots(self, node: dict[str, Any]) -> dict[str, Any]:
        return {k: self.decode(v) for k, v in node["z"].items()}

    def _set_slots(self, obj: Any, node: dict[str, Any]) -> None:
        for k, v in self._slots(node).items():
            object.__setattr__(obj, k, v)
