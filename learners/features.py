"""Prompt features: a pure function from a prompt (plus caller context) to a float vector.

Layout of the ``dim``-long vector (blocks in this order):

* 16 **dense signals**, see :data:`DENSE_FEATURES`: log-scaled sizes (characters, estimated
  tokens, lines, words), code and markup signals, digits and maths, question form, case, and the
  script (share of non-Latin and of CJK characters);
* **numeric context** (``max(4, dim // 8)`` slots): caller numbers, ``sign(v) * log1p(|v|)``,
  hashed by name with River's :class:`~river.preprocessing.FeatureHasher` (signed MurmurHash3);
* **categorical context** (``max(4, dim // 8)`` slots): ``name=value`` tokens hashed the same
  way (each contributes +-1);
* **embedding** (optional, ``embedding_dim`` slots): the output of ``embedding_fn(prompt)``,
  projected by a fixed seeded Gaussian matrix if its length differs, L2-normalised;
* **hashed text** (the rest, at least 8 slots): a bag of words and of character trigrams of
  the prompt's head and tail (its first and last ``max_ngram_chars`` characters: long prompts
  often share instructions or few-shot examples at the start and put the actual question at
  the end; the middle is skipped, which bounds the cost), lower-cased and hashed (a fixed
  position-aware polynomial of the code points, splitmix64-mixed, one signed slot per word or
  trigram, vectorised in NumPy), the counts mapped to ``sign * log1p(|count|)`` and the block
  L2-normalised. Words are runs of ``\\w`` characters of the Basic Multilingual Plane.

Every value is bounded or log-scaled, so policies can standardise online (see
:mod:`banditroute.learners.base`). ``extract`` keeps no state: equal inputs give equal vectors, in
any process.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from river.preprocessing import FeatureHasher

from banditroute.learners._validation import check_int

__all__ = ["DENSE_FEATURES", "FeatureExtractor", "context_group", "estimate_tokens"]

DENSE_FEATURES = (
    "log_chars",
    "log_tokens",
    "log_lines",
    "log_words",
    "mean_word_length",
    "code_punctuation_share",
    "log_code_markers",
    "log_markup_markers",
    "digit_share",
    "log_math_markers",
    "ends_with_question",
    "log_question_marks",
    "starts_with_question_word",
    "uppercase_share",
    "non_latin_share",
    "cjk_share",
)

# Which code points (of the Basic Multilingual Plane) are word characters, like regex \w:
# -1 (all bits set) for a word character, 0 otherwise.
_WORD_MASK = np.array([-1 if chr(c).isalnum() else 0 for c in range(0x10000)], dtype=np.int64)
_WORD_MASK[ord("_")] = -1
_WORD_MASK[0xFFFF] = 0  # stands for every code point above the BMP


def _splitmix64(state: int, count: int) -> list[int]:
    """``count`` outputs of the splitmix64 generator (pure Python: identical everywhere)."""
    out, mask = [], (1 << 64) - 1
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


# Odd 64-bit multipliers for position-dependent hashing of code points (fixed, so features
# never change between processes); numpy's uint64 arithmetic wraps modulo 2**64.
_MUL = np.array([v | 1 for v in _splitmix64(0x62616E646974, 64)], dtype=np.uint64)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_MUL3 = _MUL[:3].copy()
_MUL.flags.writeable = _MUL3.flags.writeable = _WORD_MASK.flags.writeable = False
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_NON_LATIN = re.compile(r"[^\x00-\u024f\s]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# Substring counts (str.count is a fast C scan; a regex per signal costs ~10x more).
_CODE_MARKERS = (
    "```", "def ", "return", "import ", "#include", "function", "=>", "class ", "{\n", ";\n",
    "\n    ", "\n\t", "const ", "fn ", "SELECT ",
)
_MARKUP_MARKERS = ("</", "/>", "<div", "<p>", "\n# ", "\n## ", "\n- ", "\n* ", "**", "](", "\n1. ")
_MATH_MARKERS = (
    "\\frac", "\\sum", "\\int", "\\sqrt", "$", "=", "^", "+", "√", "∑", "∫", "π", "±", "≤",
    "≥", "×", "÷",
)
# A marker is counted only when its gate (a character of it that is rare in prose) occurs at
# all: ``c in text`` is a memchr, much cheaper than a substring count. Same sums, less work.
_GATE_CHARS = "`\\#{};<>*]\t$^S1-"


def _gated(markers: tuple[str, ...]) -> tuple[tuple[str | None, tuple[str, ...]], ...]:
    groups: dict[str | None, list[str]] = {}
    for marker in markers:
        # "" is in every text; None: a non-ASCII marker, counted only in non-ASCII text
        gate = next((c for c in _GATE_CHARS if c in marker), "" if marker.isascii() else None)
        groups.setdefault(gate, []).append(marker)
    return tuple((gate, tuple(group)) for gate, group in groups.items())


_CODE_GROUPS, _MARKUP_GROUPS, _MATH_GROUPS = map(
    _gated, (_CODE_MARKERS, _MARKUP_MARKERS, _MATH_MARKERS)
)


def _count_markers(
    text: str, groups: tuple[tuple[str | None, tuple[str, ...]], ...], ascii_text: bool
) -> int:
    total = 0
    for gate, markers in groups:
        if gate in text if gate is not None else not ascii_text:
            total += sum(map(text.count, markers))
    return total


_DELETE_DIGITS = bytes(range(48, 58))
_DELETE_UPPER = bytes(range(65, 91))
_DELETE_CODE_PUNCT = b"{}[]();=<>"
_QUESTION_START = re.compile(
    r"\s*(?:what|why|how|when|where|who|whom|which|whose|can|could|would|should|is|are|do|"
    r"does|did|will|explain|qu[eé]|por qu[eé]|c[oó]mo|warum|wie|was|pourquoi|comment)\b",
    re.IGNORECASE,
)


def context_group(categorical: Mapping[str, str] | None) -> str | None:
    """The group a request belongs to for the policies' group effects: its whole categorical
    context as canonical JSON (names sorted), or None without one.

    The categorical context is also hashed into the feature vector; the group gives each
    distinct context its own learnt effect per model (see ``group`` in
    :meth:`banditroute.learners.base.Policy.select`).

    >>> context_group({"task": "maths", "tenant": "acme"}) == context_group(
    ...     {"tenant": "acme", "task": "maths"})
    True
    >>> context_group({"task": "maths"}), context_group({})
    ('{"task":"maths"}', None)
    """
    if not categorical:
        return None
    if not isinstance(categorical, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in categorical.items()):
        raise TypeError("categorical context must map str to str")
    return json.dumps(dict(sorted(categorical.items())), separators=(",", ":"),
                      ensure_ascii=False)


def estimate_tokens(text: str) -> int:
    """Estimate the number of LLM tokens of ``text``: ``ceil(utf8_bytes / 4)``.

    About four characters per token for English, about 0.75 tokens per CJK character.

    Examples
    --------
    >>> estimate_tokens("Hello, world!")
    4
    >>> estimate_tokens("")
    0
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return (len(text.encode("utf-8")) + 3) // 4


def _signed_log1p(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


class FeatureExtractor:
    """Turn a prompt and caller context into a fixed-width float64 vector (a pure function).

    Parameters
    ----------
    dim
        Output length, 32 to 4096 (default 64).
    embedding_fn
        Optional ``callable(str) -> array-like`` (e.g. a local sentence embedder); its output
        fills the embedding block. Nothing is downloaded by banditroute.
    embedding_dim
        Slots of the embedding block (default ``dim // 4`` when ``embedding_fn`` is given).
    max_ngram_chars
        Words and character trigrams are taken from this many leading and this many trailing
        characters (bounds the cost; 0 leaves the text block empty).
    seed
        Seed of the hash functions and of the embedding projection.

    Examples
    --------
    >>> fx = FeatureExtractor(dim=64)
    >>> v = fx.extract("How do I reverse a list in Python?", numeric={"max_tokens": 256},
    ...                categorical={"tenant": "acme"})
    >>> v.shape, v.dtype, fx.dim
    ((64,), dtype('float64'), 64)
    >>> float(v[fx.feature_names.index("ends_with_question")])
    1.0
    >>> bool((fx.extract("How do I reverse a list in Python?", {"max_tokens": 256},
    ...                  {"tenant": "acme"}) == v).all())
    True
    """

    def __init__(
        self,
        dim: int = 64,
        *,
        embedding_fn: Callable[[str], Any] | None = None,
        embedding_dim: int | None = None,
        max_ngram_chars: int = 512,
        seed: int = 0,
    ) -> None:
        self._dim = check_int("dim", dim, low=32, high=4096)
        if embedding_fn is not None and not callable(embedding_fn):
            raise TypeError("embedding_fn must be callable or None")
        self.embedding_fn = embedding_fn
        self.max_ngram_chars = check_int("max_ngram_chars", max_ngram_chars, low=0)
        self.seed = check_int("seed", seed, low=0)
        self._n_dense = len(DENSE_FEATURES)
        self._n_num = max(4, self._dim // 8)
        self._n_cat = max(4, self._dim // 8)
        if embedding_fn is None:
            if embedding_dim is not None:
                raise ValueError("embedding_dim needs an embedding_fn")
            self._n_emb = 0
        else:
            self._n_emb = check_int(
                "embedding_dim", self._dim // 4 if embedding_dim is None else embedding_dim, low=1
            )
        self._n_text = self._dim - self._n_dense - self._n_num - self._n_cat - self._n_emb
        if self._n_text < 8:
            raise ValueError(
                f"dim={self._dim} leaves {self._n_text} hashed text slots (need >= 8); "
                "raise dim or lower embedding_dim"
            )
        self._num_hasher = FeatureHasher(self._n_num, seed=self.seed)
        self._cat_hasher = FeatureHasher(self._n_cat, seed=self.seed + 1)
        salts = _splitmix64(self.seed + 2, 2)
        self._word_salt, self._char_salt = np.uint64(salts[0]), np.uint64(salts[1])
        self._projections: dict[int, np.ndarray] = {}
        empty = np.zeros(0, dtype=np.int64)
        self._text_tables: tuple[np.ndarray, np.ndarray, np.ndarray] = (empty, empty, empty)
        self._n_text_u64 = np.uint64(self._n_text)
        self._o_num = self._n_dense
        self._o_cat = self._o_num + self._n_num
        self._o_emb = self._o_cat + self._n_cat
        self._o_text = self._o_emb + self._n_emb

    @property
    def dim(self) -> int:
        """Length of the vectors returned by :meth:`extract`."""
        return self._dim

    @property
    def feature_names(self) -> list[str]:
        """A name per output slot."""
        return [
            *DENSE_FEATURES,
            *(f"numeric_hash_{i}" for i in range(self._n_num)),
            *(f"categorical_hash_{i}" for i in range(self._n_cat)),
            *(f"embedding_{i}" for i in range(self._n_emb)),
            *(f"text_hash_{i}" for i in range(self._n_text)),
        ]

    def extract(
        self,
        prompt: str,
        numeric: Mapping[str, float] | None = None,
        categorical: Mapping[str, str] | None = None,
    ) -> np.ndarray:
        """Features of ``prompt`` with optional numeric and categorical caller context.

        Raises
        ------
        TypeError
            ``prompt`` is not a str, or a context value has the wrong type.
        ValueError
            A numeric context value is not finite.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        out = np.zeros(self._dim)
        self._dense(prompt, out)
        if numeric:
            self._numeric(numeric, out)
        if categorical:
            self._categorical(categorical, out)
        if self.embedding_fn is not None:
            self._embedding(prompt, out)
        self._text(prompt, out)
        return out

    # ------------------------------------------------------------------ blocks
    def _dense(self, text: str, out: np.ndarray) -> None:
        n = len(text)
        if n == 0:
            return
        inv = 1.0 / n
        words = text.count(" ") + 1
        raw = text.encode("utf-8")
        ascii_text = len(raw) == n
        out[0] = math.log1p(n)
        out[1] = math.log1p((len(raw) + 3) // 4)
        out[2] = math.log1p(text.count("\n") + 1)
        out[3] = math.log1p(words)
        out[4] = min(n / words, 20.0) / 10.0
        out[5] = (len(raw) - len(raw.translate(None, _DELETE_CODE_PUNCT))) * inv
        out[6] = math.log1p(_count_markers(text, _CODE_GROUPS, ascii_text))
        out[7] = math.log1p(_count_markers(text, _MARKUP_GROUPS, ascii_text))
        out[8] = (len(raw) - len(raw.translate(None, _DELETE_DIGITS))) * inv
        out[9] = math.log1p(_count_markers(text, _MATH_GROUPS, ascii_text))
        out[10] = 1.0 if text.rstrip().endswith(("?", "？")) else 0.0
        out[11] = math.log1p(text.count("?") + (0 if ascii_text else text.count("？")))
        out[12] = 1.0 if _QUESTION_START.match(text) else 0.0
        out[13] = (len(raw) - len(raw.translate(None, _DELETE_UPPER))) * inv
        if not ascii_text:
            out[14] = len(_NON_LATIN.findall(text)) * inv
            out[15] = len(_CJK.findall(text)) * inv

    def _numeric(self, numeric: Mapping[str, float], out: np.ndarray) -> None:
        values: dict[str, float] = {}
        for name, value in numeric.items():
            if not isinstance(name, str):
                raise TypeError(f"numeric context names must be str, got {type(name).__name__}")
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"numeric context {name!r} must be a number")
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"numeric context {name!r} must be finite, got {v!r}")
            values[name] = math.copysign(math.log1p(abs(v)), v)
        self._scatter(self._num_hasher.transform_one(values), out, self._o_num)

    def _categorical(self, categorical: Mapping[str, str], out: np.ndarray) -> None:
        tokens: dict[str, str] = {}
        for name, value in categorical.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"categorical context {name!r} must map str to str")
            tokens[name] = value
        self._scatter(self._cat_hasher.transform_one(tokens), out, self._o_cat)

    def _embedding(self, prompt: str, out: np.ndarray) -> None:
        assert self.embedding_fn is not None
        emb = np.asarray(self.embedding_fn(prompt), dtype=np.float64).ravel()
        if not np.isfinite(emb).all():
            raise ValueError("embedding_fn returned non-finite values")
        if emb.size != self._n_emb:
            proj = self._projections.get(emb.size)
            if proj is None:
                rng = np.random.default_rng([self.seed, emb.size])
                proj = rng.standard_normal((self._n_emb, emb.size)) / math.sqrt(self._n_emb)
                self._projections[emb.size] = proj
            emb = proj @ emb
        norm = float(np.linalg.norm(emb))
        if norm > 0.0:
            out[self._o_emb : self._o_emb + self._n_emb] = emb / norm

    def _text(self, text: str, out: np.ndarray) -> None:
        n, h = len(text), self.max_ngram_chars
        if n == 0 or h == 0:
            return
        # The head (instructions, shared few-shot examples) and the tail (usually the actual
        # question) of long prompts; the middle is skipped, which bounds the cost.
        window = (text if n <= 2 * h else text[:h] + "\n" + text[-h:]).lower()
        # A trailing NUL (not a word character) ends the last word; it is not part of any
        # trigram. Few NumPy calls: on short prompts their fixed cost is what counts.
        # _WORD_MASK: -1 on word characters, 0 elsewhere (code points above the BMP included)
        if window.isascii():  # one byte per code point: the cheapest encoding
            codes = np.frombuffer((window + "\0").encode("ascii"), dtype=np.uint8)
            last = _WORD_MASK.take(codes)
        else:
            codes = np.frombuffer((window + "\0").encode("utf-32-le"), dtype=np.uint32)
            last = _WORD_MASK.take(np.minimum(codes, 0xFFFF))
        size = codes.size
        tables = self._text_tables
        arange, pos_mul, salts = tables if tables[0].size >= size else self._tables(size)
        # words: runs of \w characters (as str.isalnum or "_"), hashed with their positions
        # (1-based position p in its word weighs the code point by _MUL[p % 64]); p is the
        # distance to the last non-word character (index -1 before the first one).
        np.bitwise_or(last, arange[:size], out=last)  # -1 on word characters, else the index
        np.maximum.accumulate(last, out=last)
        pos = np.subtract(arange[:size], last, out=last)
        # A word's hash is the sum of its weighted codes: the segments start at 0 and after
        # each word end; non-word characters weigh 0 (pos_mul[0] == 0), so the extra segment
        # after the last word end sums to 0 (it is overwritten by the trigrams).
        starts = np.empty(size, dtype=bool)
        starts[0] = True
        np.greater(pos[:-1], pos[1:], out=starts[1:])
        bounds = starts.nonzero()[0]
        n_words, n_tri = bounds.size - 1, max(size - 3, 0)
        codes = codes.astype(np.uint64)
        weighted = pos_mul.take(pos)
        weighted *= codes
        z = np.empty(n_words + max(n_tri, 1), dtype=np.uint64)
        np.add.reduceat(weighted, bounds, out=z[: n_words + 1])
        if n_tri:  # character trigrams: an (n_tri, 3) sliding view of the codes times _MUL[:3]
            grams = np.ndarray((n_tri, 3), np.uint64, codes, 0, (8, 8))
            np.matmul(grams, _MUL3, out=z[n_words:])
        z = z[: n_words + n_tri]
        half = salts.size // 2  # word salt on the words, char salt on the trigrams: one XOR
        z ^= salts[half - n_words : half + n_tri]
        z ^= z >> _S30  # splitmix64 finaliser
        z *= _MIX1
        z ^= z >> _S27
        z *= _MIX2
        z ^= z >> _S31
        size = self._n_text
        signs = np.copysign(1.0, z.view(np.int64))  # -1.0 where the top bit is set, else 1.0
        counts = np.bincount((z % self._n_text_u64).view(np.int64), weights=signs, minlength=size)
        block = out[self._o_text :]
        np.log1p(np.abs(counts), out=block)  # sign(count) * log1p(|count|)
        np.copysign(block, counts, out=block)
        norm = math.sqrt(block.dot(block))  # the same ddot as ``block @ block``, less dispatch
        if norm > 0.0:
            block /= norm

    def _tables(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read-only tables for windows of up to ``length`` code points (grown on demand).

        ``arange``; ``_MUL[p % 64]`` for word positions ``p`` >= 1 and 0 at ``p = 0`` (not a
        word); the word salt repeated ``L`` times then the char salt ``L`` times (``L >=
        length``), so that ``salts[L - w :]`` starts with ``w`` word salts. Safe to share
        between threads: a larger set is built whole, then published in one assignment.
        """
        tables = self._text_tables
        if tables[0].size < length:  # grown once per larger window; then only read
            size = max(length, 2 * self.max_ngram_chars + 2)
            p = np.arange(size)
            pos_mul = np.where(p > 0, _MUL[p & 63], np.uint64(0))
            salts = np.repeat(np.array([self._word_salt, self._char_salt]), size)
            for table in (p, pos_mul, salts):
                table.flags.writeable = False
            tables = self._text_tables = (p, pos_mul, salts)
        return tables

    @staticmethod
    def _scatter(hashed: Mapping[int, float], out: np.ndarray, offset: int) -> None:
        if hashed:
            pos = np.fromiter(hashed.keys(), dtype=np.int64, count=len(hashed)) + offset
            out[pos] += np.fromiter(hashed.values(), dtype=np.float64, count=len(hashed))
