"""The event-log follower: the only way a process's policies learn.

Outcomes and feedback are events of one log ordered by ``event_id`` (writers allocate ids
under an advisory lock, so ids become visible in order). Every process, including the one
that wrote an event, applies the log in id order, read through the storage reader
(:func:`banditroute.service.storage.events.read_events`): woken by NOTIFY on
``banditroute_events`` and ``banditroute_config`` (:class:`~banditroute.service.storage.events.
Listener`), and polling every ``poll_interval_ms`` as a fallback. Bursts of NOTIFYs are coalesced:
after each fetch that found no event the shortest gap between two NOTIFY-woken fetches doubles
(from ``min_fetch_interval_s`` up to the poll interval, i.e. never later than a poll would be); a
fetch that applies events, a config NOTIFY or :meth:`EventFollower.wake` restores the short gap.
This changes only when events are read, never their order. Each fetch reads the next events and
then the config version, so a policy or model referenced by an event is always known when the
event is applied.

The pieces it drives live next to it: installing a config's policies
(:mod:`~banditroute.service.core.policy_install`), turning events into what policies learn
(:mod:`~banditroute.service.core.log_events`), the cost model
(:mod:`~banditroute.service.core.cost_learning`) and snapshots
(:mod:`~banditroute.service.core.snapshots`). :func:`rebuild_policy` (the reference a restored
policy equals) is :mod:`banditroute.service.core.rebuild`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from banditroute.learners.cost import CostModel
from banditroute.service.core.budgets import BudgetBook
from banditroute.service.core.config_cache import ConfigSnapshot, config_version, load_config
from banditroute.service.core.cost_learning import CostLearner
from banditroute.service.core.log_events import apply_event, decision_of, seed_rewards
from banditroute.service.core.policies import DecisionCache, PolicyRegistry
from banditroute.service.core.policy_install import install_policies, lowest_position
from banditroute.service.core.rebuild import rebuild_policy
from banditroute.service.core.snapshots import PolicySnapshots
from banditroute.service.metrics import Metrics
from banditroute.service.storage.events import LearningEvent, Listener, iter_events, read_events
from banditroute.service.storage.models import EVENTS_CHANNEL

__all__ = ["EventFollower", "rebuild_policy"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    events: list[LearningEvent]
    config: ConfigSnapshot | None


class EventFollower:
    """Follows the event log and keeps this process's config and policies current.

    Parameters
    ----------
    engine
        SQLAlchemy engine of the database.
    registry
        The process's live policies.
    listen_url
        libpq URL for the LISTEN connection (None: poll only).
    poll_interval_s
        Poll period when no NOTIFY arrives and the LISTEN connection is down (or not used).
    listening_poll_interval_s
        Poll period while the LISTEN connection is up: every outcome, feedback and config
        change is announced by NOTIFY then, so polling is only a safety net, and an idle poll
        is not free (it runs in a worker thread that takes the GIL from the RPCs).
    min_fetch_interval_s
        Shortest time between two fetches woken by NOTIFY (coalesces bursts); doubles after
        every fetch that found no event, up to ``poll_interval_s``.
    cost_learn_every
        The cost model learns from outcomes whose event id is a multiple of this.
    yield_every
        Events applied between two yields to the event loop (keeps Route latency low).
    snapshot_every
        Learning events of a policy between two snapshots (0 disables snapshots).
    batch_size
        Events fetched per query.
    metrics
        Optional metrics sink.
    """

    def __init__(
        self,
        engine: Engine,
        registry: PolicyRegistry,
        *,
        listen_url: str | None = None,
        poll_interval_s: float = 0.2,
        listening_poll_interval_s: float = 2.0,
        snapshot_every: int = 10_000,
        batch_size: int = 2000,
        metrics: Metrics | None = None,
        keep_snapshots: int = 3,
        min_fetch_interval_s: float = 0.05,
        cost_learn_every: int = 4,
        yield_every: int = 64,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.listen_url = listen_url
        self.poll_interval_s = poll_interval_s
        self.listening_poll_interval_s = max(poll_interval_s, listening_poll_interval_s)
        self.batch_size = batch_size
        self.metrics = metrics
        self.min_fetch_interval_s = min_fetch_interval_s
        self.yield_every = max(1, yield_every)
        self.config = ConfigSnapshot()
        self.position = 0
        self.decisions = DecisionCache()
        self.config_listeners: list[Callable[[ConfigSnapshot], None]] = []
        #: Called in the fetch transaction whenever the config version changed (e.g. to reload
        #: running experiments from the same snapshot).
        self.config_hooks: list[Callable[[Connection], None]] = []
        #: Output-token and latency predictors, learned from the outcomes of the log.
        self.cost = CostLearner(registry.dim, cost_learn_every)
        #: The routes' budget controllers, computed from the log (see core.budgets).
        self.budgets = BudgetBook()
        self.snapshots = PolicySnapshots(
            engine, registry, self.cost, every=snapshot_every, keep=keep_snapshots
        )
        self._wake = asyncio.Event()
        self._urgent = False  # a config change or wake(): fetch after the shortest gap
        self._fetch_gap_s = min_fetch_interval_s  # grows while NOTIFY-woken fetches find nothing
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._listening = False  # the LISTEN connection is up
        self.last_error: str = ""

    @property
    def cost_model(self) -> CostModel:
        """The cost model (Route prices candidates with it; replaced only at :meth:`start`)."""
        return self.cost.model

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the config, restore every policy from its snapshot and catch up with the log."""
        config = await asyncio.to_thread(self._read_config)
        restored = await asyncio.to_thread(self.snapshots.restore, config)
        install_policies(self.registry, config, self.position, restored)
        self.position = lowest_position(self.registry)
        self._set_config(config)
        await self._configure_budgets(config)
        await self.catch_up()
        self._tasks.append(asyncio.create_task(self._run(), name="banditroute-follower"))
        if self.listen_url:
            self._tasks.append(asyncio.create_task(self._listen(), name="banditroute-listen"))

    async def stop(self) -> None:
        """Stop following; waits for a fetch in progress so no query outlives the follower."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            if task.get_name() != "banditroute-follower":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 30)
        self._tasks.clear()
        async with self._lock:  # a catch-up started by an RPC finishes first
            pass

    def wake(self) -> None:
        """Ask the follower to look at the log now (e.g. after this process wrote)."""
        self._urgent = True
        self._wake.set()

    async def _run(self) -> None:
        last = 0.0
        while not self._stopping:
            period = self.listening_poll_interval_s if self._listening else self.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)
            # coalesce bursts of NOTIFYs (one per group commit) into one fetch
            gap = self.min_fetch_interval_s if self._urgent else self._fetch_gap_s
            pause = gap - (time.monotonic() - last)
            if pause > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            self._urgent = False
            if self._stopping:
                return
            last = time.monotonic()
            try:
                before = self.position
                await self.catch_up()
                self.last_error = ""
                if self.position != before or self._urgent:
                    self._fetch_gap_s = self.min_fetch_interval_s
                else:  # nothing new: most NOTIFYs were for decision-only commits
                    self._fetch_gap_s = min(
                        max(self.poll_interval_s, self.min_fetch_interval_s),
                        self._fetch_gap_s * 2,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: keep serving, retry later
                if self.last_error != type(exc).__name__:
                    log.warning("event follower cannot read the log: %s", type(exc).__name__)
                self.last_error = type(exc).__name__
                if self.metrics is not None:
                    self.metrics.db_error("follow")
                await asyncio.sleep(min(2.0, self.poll_interval_s * 5))

    async def _listen(self) -> None:
        assert self.listen_url is not None
        async with Listener(self.listen_url) as listener:
            while not self._stopping:
                notes = await listener.wait(self.listening_poll_interval_s)
                self._listening = listener.connected
                for channel, payload in notes:
                    if channel == EVENTS_CHANNEL:
                        if self.metrics is not None:
                            with contextlib.suppress(ValueError):
                                lag = int(payload) - self.position
                                self.metrics.follower_lag.set(max(lag, 0))
                    elif channel:  # config: apply it promptly
                        self._urgent = True
                if notes:  # "" after a (re)connect or a lost connection: read the log
                    self._wake.set()

    # ------------------------------------------------------------------ reading
    def _read_config(self) -> ConfigSnapshot:
        with self.engine.connect() as conn:
            config = load_config(conn)
            self._run_hooks(conn)
            return config

    def _run_hooks(self, conn: Connection) -> None:
        for hook in self.config_hooks:
            try:
                hook(conn)
            except Exception:
                log.exception("config hook failed")

    def _fetch(self, after: int, known_version: int) -> _Batch:
        # Autocommit: each statement sees the latest committed data. Events are read first and
        # the config after them, so the config is at least as new as anything the events
        # reference (a decision's policy and models were committed before the decision).
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            events = read_events(conn, after, self.batch_size)
            config = None
            if config_version(conn) != known_version:
                config = load_config(conn)
                self._run_hooks(conn)
        return _Batch(events, config)

    # ------------------------------------------------------------------ applying
    def _set_config(self, config: ConfigSnapshot) -> None:
        self.config = config
        for listener in self.config_listeners:
            listener(config)

    async def catch_up(self) -> int:
        """Apply every committed event not applied yet; returns how many changed a policy."""
        learned = 0
        async with self._lock:
            while True:
                batch = await asyncio.to_thread(self._fetch, self.position, self.config.version)
                if batch.config is not None:
                    install_policies(self.registry, batch.config, self.position)
                    self._set_config(batch.config)
                    await self._configure_budgets(batch.config)
                learned += await self._apply(batch)
                if len(batch.events) < self.batch_size:
                    break
            if self.metrics is not None:
                self.metrics.follower_last.set(self.position)
                for (_, route), status in self.budgets.statuses(datetime.now(UTC)).items():
                    self.metrics.budget(route, lam=status.lam, cost_weight=status.cost_weight,
                                        remaining_usd=status.remaining_usd)
            await self.snapshots.save_due(self.position)
        return learned

    async def _configure_budgets(self, config: ConfigSnapshot) -> None:
        """Adopt the config's route budgets; a new or changed one is rebuilt from the log up
        to this follower's position (the events after it are applied as they come)."""
        fresh = self.budgets.configure(config)
        if fresh and self.position > 0:
            await asyncio.to_thread(self._rebuild_budgets, fresh, self.position)

    def _rebuild_budgets(self, keys: list[tuple[str, str]], upto: int) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            self.budgets.rebuild(keys, iter_events(conn, 0, upto))

    async def _apply(self, batch: _Batch) -> int:
        learned = 0
        for ev in batch.events:  # keep the batch's cached decisions from being evicted by it
            self.decisions.get(ev.decision_id)
        for n, ev in enumerate(batch.events):
            if n and n % self.yield_every == 0:
                await asyncio.sleep(0)  # let RPCs run between chunks of learning
            item = self.decisions.get(ev.decision_id)
            if item is None:
                item = decision_of(ev)
                if item is None:
                    continue  # decision row not found (dropped partition): nothing to learn
                seed_rewards(self.registry, item)
                self.decisions.put(ev.decision_id, item)
            changed = apply_event(self.registry, item, ev)
            self.cost.learn(item, ev)
            self.budgets.apply(ev)
            learned += 1 if changed else 0
            self.position = ev.event_id
        if batch.events:
            self.registry.advance(self.position, len(batch.events))
            if self.metrics is not None:
                self.metrics.follower_applied.inc(len(batch.events))
        return learned

    async def wait_until(self, event_id: int, timeout: float = 10.0) -> bool:
        """Catch up until ``event_id`` is applied (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        while self.position < event_id:
            await self.catch_up()
            if self.position >= event_id:
                break
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True
