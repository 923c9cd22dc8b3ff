"""Published per-token prices and the token estimates used where a dataset has no costs.

RouteLLM's caches record correctness only, so replay turns them into dollars with the
providers' list prices (USD per 1M tokens, input / output) at the time the caches were
made:

======================================  ========  =========
model                                    input     output
======================================  ========  =========
gpt-4-1106-preview (OpenAI)              10.00     30.00
mistralai/Mixtral-8x7B-Instruct-v0.1     0.60      0.60   (Together / Anyscale class price)
======================================  ========  =========

Input tokens are estimated from the prompt text with the estimate Route uses
(:func:`banditroute.learners.features.estimate_tokens`: UTF-8 bytes / 4, rounded up); output
tokens come from the recorded response when the cache has one (GSM8K, MT-Bench) and otherwise
from the per-dataset constant in :data:`DEFAULT_OUTPUT_TOKENS` (MMLU answers are a single
letter).
"""

from __future__ import annotations

from banditroute.learners.features import estimate_tokens

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "PRICES_PER_MILLION",
    "call_cost",
    "estimate_tokens",
]

#: USD per 1M tokens as ``(input, output)``.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
}

#: Output tokens assumed per answer when a dataset records no response text.
DEFAULT_OUTPUT_TOKENS: dict[str, int] = {
    "routellm-mmlu": 8,
    "routellm-gsm8k": 150,
    "routellm-mtbench": 400,
}


def call_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """USD cost of one call of ``model`` at the list prices above.

    Examples
    --------
    >>> round(call_cost("gpt-4-1106-preview", 1000, 100), 6)
    0.013
    """
    if model not in PRICES_PER_MILLION:
        raise ValueError(f"model: no published price recorded for {model!r}")
    price_in, price_out = PRICES_PER_MILLION[model]
    return (input_tokens * price_in + output_tokens * price_out) / 1_000_000.0
