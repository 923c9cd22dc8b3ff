"""The demo pool: five well-known models, policy ``default`` (LinUCB) and route ``default``.

``banditroute serve --demo`` registers it (:func:`register_demo_pool`) so that a first Route
works on an empty database; nothing already there is changed.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from banditroute.service.core.admin import put_model, put_policy, put_route, transaction
from banditroute.service.storage.repositories import (
    ModelRepository,
    PolicyRepository,
    RouteRepository,
)

__all__ = ["DEMO_MODELS", "ensure_demo", "register_demo_pool"]

#: The demo pool: (id, provider, USD per 1M input tokens, USD per 1M output tokens), list prices.
DEMO_MODELS: tuple[tuple[str, str, float, float], ...] = (
    ("gpt-4o", "openai", 2.50, 10.00),
    ("gpt-4o-mini", "openai", 0.15, 0.60),
    ("claude-3-5-sonnet", "anthropic", 3.00, 15.00),
    ("claude-3-haiku", "anthropic", 0.25, 1.25),
    ("llama-3.1-8b-instruct", "meta", 0.18, 0.18),
)


def ensure_demo(session: Session) -> bool:
    """Register the demo pool, policy ``default`` (LinUCB) and route ``default`` where missing.

    Existing models, policies and routes are left untouched. Returns True if anything was added.
    """
    added = False
    models = ModelRepository(session)
    for model_id, provider, price_in, price_out in DEMO_MODELS:
        if models.get(model_id) is None:
            put_model(
                session,
                model_id,
                provider=provider,
                input_usd_per_mtok=price_in,
                output_usd_per_mtok=price_out,
                actor="demo",
            )
            added = True
    if PolicyRepository(session).get("default") is None:
        put_policy(
            session,
            "default",
            "linucb",
            hyperparameters={},
            cost_weight=10.0,
            latency_weight=0.0,
            feedback_weight=0.5,
            actor="demo",
        )
        added = True
    if RouteRepository(session).get("", "default") is None:
        put_route(session, "default", "default", actor="demo")
        added = True
    return added


def register_demo_pool(engine: Engine) -> bool:
    """:func:`ensure_demo` in its own transaction (serialised across processes)."""
    with transaction(engine) as session:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('banditroute.demo'))"))
        return ensure_demo(session)
