"""The event-log follower: the only way a process's policies learn.

Outcomes and feedback are events of one log ordered by ``event_id`` (writers allocate ids
under an advisory lock, so ids become visible in order). Every process, including the one
that wrote an event, applies the log in id order: woken by NOTIFY on ``banditroute_events`` and
``banditroute_config``, and polling every ``poll_interval_ms`` as a fallback. The writer
notifies after every group commit, decisions included, so under Route-only load most wake-ups
find no event: after each such empty fetch the shortest gap between two NOTIFY-woken fetches
doubles (from ``min_fetch_interval_s`` up to the poll interval, i.e. never later than a poll
would be); a fetch that applies events, a config NOTIFY or :meth:`EventFollower.wake` restores
the short gap. This changes only when events are read, never their order. Each fetch reads
the config version and the next events in one REPEATABLE READ transaction, so a policy or model
referenced by an event is always known when the event is applied.

Snapshots: after ``snapshot_every`` learning events a policy's state
(``banditroute.learners.state.dumps``) is stored with the follower position. On start every policy
is restored from its latest snapshot and the follower replays the later events, giving a state
bit-identical to a rebuild from the whole log (:func:`rebuild_policy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import Connection, Engine, text

from banditroute.learners import state as policy_state
from banditroute.learners.base import Policy
from banditroute.learners.cost import CostModel
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.config_cache import ConfigSnapshot, load_config
from banditroute.service.core.policies import (
    DecisionCache,
    DecisionEvents,
    OutcomeFacts,
    PolicyRegistry,
    PolicySpec,
)
from banditroute.service.metrics import Metrics
from banditroute.service.storage.models import CONFIG_CHANNEL, EVENTS_CHANNEL

__all__ = ["EventFollower", "LogEvent", "parse_shadow_keys", "rebuild_policy"]

log = logging.getLogger(__name__)

_EVENTS_SQL = text(
    """
    SELECT * FROM (
      SELECT event_id, 'o' AS kind, decision_id, decision_created_at, quality, success,
             error, cost_usd, latency_ms, NULL::float8 AS rating, output_tokens
        FROM outcomes WHERE event_id > :after
      UNION ALL
      SELECT event_id, 'f', decision_id, decision_created_at, NULL, NULL, NULL, NULL, NULL,
             rating, NULL
        FROM feedback WHERE event_id > :after
      ORDER BY event_id
      LIMIT :limit
    ) e
    UNION ALL
    -- the config version, from the same snapshot as the events (one round trip)
    SELECT coalesce(max(id), 0), 'v', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM config_changes
    """
)
_DECISIONS_SQL = text(
    """
    SELECT decision_id, policy_name, policy_version, model, features, shadow
      FROM decisions
     WHERE decision_id = ANY(:ids) AND created_at = ANY(:ts)
    """
)
_HISTORY_SQL = text(
    """
    SELECT event_id, 'o' AS kind, decision_id, decision_created_at, quality, success,
           error, cost_usd, latency_ms, NULL::float8 AS rating
      FROM outcomes WHERE decision_id = ANY(:ids) AND event_id <= :upto
    UNION ALL
    SELECT event_id, 'f', decision_id, decision_created_at, NULL, NULL, NULL, NULL, NULL, rating
      FROM feedback WHERE decision_id = ANY(:ids) AND event_id <= :upto
    ORDER BY event_id
    """
)
_POLICY_EVENTS_SQL = text(
    """
    SELECT e.* FROM (
      SELECT event_id, 'o' AS kind, decision_id, decision_created_at, quality, success,
             error, cost_usd, latency_ms, NULL::float8 AS rating
        FROM outcomes WHERE event_id > :after AND event_id <= :upto
      UNION ALL
      SELECT event_id, 'f', decision_id, decision_created_at, NULL, NULL, NULL, NULL, NULL,
             rating
        FROM feedback WHERE event_id > :after AND event_id <= :upto
    ) e
    ORDER BY e.event_id
    """
)
_LATEST_SNAPSHOT_SQL = text(
    """
    SELECT last_event_id, state FROM policy_snapshots
     WHERE policy_name = :name AND policy_version = :version
     ORDER BY last_event_id DESC LIMIT 1
    """
)
_SAVE_SNAPSHOT_SQL = text(
    """
    INSERT INTO policy_snapshots (policy_name, policy_version, last_event_id, state)
    VALUES (:name, :version, :last_event_id, :state)
    ON CONFLICT DO NOTHING
    """
)
_PRUNE_SNAPSHOTS_SQL = text(
    """
    DELETE FROM policy_snapshots
     WHERE policy_name = :name AND policy_version = :version AND last_event_id < (
       SELECT min(last_event_id) FROM (
         SELECT last_event_id FROM policy_snapshots
          WHERE policy_name = :name AND policy_version = :version
          ORDER BY last_event_id DESC LIMIT :keep) k)
    """
)
#: Name under which the cost model's state is stored in ``policy_snapshots`` (version 0).
COST_MODEL_SNAPSHOT = "__cost_model__"
COST_MODEL_KEY = PolicyKey(COST_MODEL_SNAPSHOT, 0)

_MAX_EVENT_SQL = text(
    "SELECT greatest((SELECT max(event_id) FROM outcomes), (SELECT max(event_id) FROM feedback), 0)"
)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One outcome (``kind == "o"``) or feedback (``"f"``) event of the log."""

    event_id: int
    kind: str
    decision_id: uuid.UUID
    decision_created_at: Any
    outcome: OutcomeFacts | None = None
    rating: float | None = None
    output_tokens: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> LogEvent:
        """Build from a row of the event queries."""
        if row.kind == "o":
            return cls(
                int(row.event_id),
                "o",
                row.decision_id,
                row.decision_created_at,
                outcome=OutcomeFacts(
                    quality=None if row.quality is None else float(row.quality),
                    success=row.success,
                    error=bool(row.error),
                    cost_usd=0.0 if row.cost_usd is None else float(row.cost_usd),
                    latency_ms=None if row.latency_ms is None else float(row.latency_ms),
                ),
                output_tokens=getattr(row, "output_tokens", None),
            )
        return cls(
            int(row.event_id),
            "f",
            row.decision_id,
            row.decision_created_at,
            rating=float(row.rating),
        )


def parse_shadow_keys(shadow: dict[str, Any] | None) -> tuple[PolicyKey, ...]:
    """Policy keys of a ``decisions.shadow`` document (``{"name@version": {...}}``).

    >>> parse_shadow_keys({"lin@2": {"model": "a"}, "bad": {}})
    (PolicyKey(name='lin', version=2),)
    """
    keys: list[PolicyKey] = []
    for k in shadow or {}:
        name, sep, version = str(k).rpartition("@")
        if sep and name and version.isdigit():
            keys.append(PolicyKey(name, int(version)))
    return tuple(keys)


def _decision_events(row: Any) -> DecisionEvents:
    return DecisionEvents(
        key=PolicyKey(row.policy_name, int(row.policy_version)),
        model=row.model,
        features=np.frombuffer(bytes(row.features), dtype="<f8").astype(np.float64),
        shadows=parse_shadow_keys(row.shadow),
    )


@dataclass(slots=True)
class _Batch:
    events: list[LogEvent]
    config: ConfigSnapshot | None
    decisions: dict[uuid.UUID, DecisionEvents] = field(default_factory=dict)


def _load_decisions(
    conn: Connection, events: Iterable[LogEvent], known: Callable[[uuid.UUID], bool], upto: int
) -> dict[uuid.UUID, DecisionEvents]:
    """Decision state (features, policy, earlier outcome/ratings) of the events' decisions."""
    wanted: dict[uuid.UUID, Any] = {}
    for ev in events:
        if ev.decision_id not in wanted and not known(ev.decision_id):
            wanted[ev.decision_id] = ev.decision_created_at
    if not wanted:
        return {}
    ids = list(wanted)
    rows = conn.execute(_DECISIONS_SQL, {"ids": ids, "ts": list(set(wanted.values()))}).all()
    found = {row.decision_id: _decision_events(row) for row in rows}
    if upto > 0:
        for row in conn.execute(_HISTORY_SQL, {"ids": ids, "upto": upto}).all():
            item = found.get(row.decision_id)
            if item is not None:
                _replay_history(item, LogEvent.from_row(row))
    return found


def _replay_history(item: DecisionEvents, ev: LogEvent) -> None:
    # Only the decision's facts: rewards are filled per policy when the policy sees an event.
    if ev.kind == "o":
        item.outcome = ev.outcome
    elif ev.rating is not None:
        item.ratings.append(ev.rating)
    item.rewards.clear()


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
        self.snapshot_every = snapshot_every
        self.batch_size = batch_size
        self.metrics = metrics
        self.keep_snapshots = keep_snapshots
        self.min_fetch_interval_s = min_fetch_interval_s
        self.cost_learn_every = max(1, cost_learn_every)
        self.yield_every = max(1, yield_every)
        self.config = ConfigSnapshot()
        self.position = 0
        self.decisions = DecisionCache()
        self.config_listeners: list[Callable[[ConfigSnapshot], None]] = []
        #: Called in the fetch transaction whenever the config version changed (e.g. to reload
        #: running experiments from the same snapshot).
        self.config_hooks: list[Callable[[Connection], None]] = []
        #: Output-token and latency predictors, learned from the outcomes of the log and
        #: snapshotted with the policies (as policy ``__cost_model__`` version 0).
        self.cost_model = CostModel(dim=registry.dim)
        self.cost_last_event_id = 0
        self._wake = asyncio.Event()
        self._urgent = False  # a config change or wake(): fetch after the shortest gap
        self._fetch_gap_s = min_fetch_interval_s  # grows while NOTIFY-woken fetches find nothing
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._listening = False  # the LISTEN connection is up
        self.last_error: str = ""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the config, restore every policy from its snapshot and catch up with the log."""
        config = await asyncio.to_thread(self._read_config)
        restored = await asyncio.to_thread(self._read_snapshots, config)
        self._install_config(config, restored)
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
        while not self._stopping:
            try:
                aconn = await psycopg.AsyncConnection.connect(
                    self.listen_url,
                    autocommit=True,
                    keepalives=1,  # a dead peer ends the LISTEN within ~25 s, not never
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
                async with aconn:
                    await aconn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await aconn.execute(f"LISTEN {CONFIG_CHANNEL}")
                    self._wake.set()  # anything missed while not listening
                    self._listening = True
                    try:
                        async for note in aconn.notifies():
                            if note.channel == EVENTS_CHANNEL and self.metrics is not None:
                                with contextlib.suppress(ValueError):
                                    lag = int(note.payload) - self.position
                                    self.metrics.follower_lag.set(max(lag, 0))
                            elif note.channel != EVENTS_CHANNEL:  # config: apply it promptly
                                self._urgent = True
                            self._wake.set()
                    finally:
                        self._listening = False
            except asyncio.CancelledError:
                raise
            except Exception:
                self._wake.set()  # poll at the short period until LISTEN is back
                await asyncio.sleep(1.0)

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

    def _read_snapshots(self, config: ConfigSnapshot) -> dict[PolicyKey, tuple[int, Policy]]:
        out: dict[PolicyKey, tuple[int, Policy]] = {}
        with self.engine.connect() as conn:
            for key in config.policies:
                if key in self.registry:
                    continue
                row = conn.execute(
                    _LATEST_SNAPSHOT_SQL, {"name": key.name, "version": key.version}
                ).first()
                if row is None:
                    continue
                try:
                    out[key] = (int(row.last_event_id), policy_state.loads(bytes(row.state)))
                except Exception:
                    log.warning("snapshot of %s@%s unreadable; rebuilding", *key)
            cost = conn.execute(
                _LATEST_SNAPSHOT_SQL, {"name": COST_MODEL_SNAPSHOT, "version": 0}
            ).first()
            if cost is not None:
                try:
                    self.cost_model = CostModel.loads(bytes(cost.state))
                    self.cost_last_event_id = int(cost.last_event_id)
                except Exception:
                    log.warning("cost model snapshot unreadable; relearning")
        return out

    def _fetch(self, after: int, known_version: int) -> _Batch:
        # Autocommit: each statement sees the latest committed data. Events are read first and
        # the config after them, so the config is at least as new as anything the events
        # reference (a decision's policy and models were committed before the decision).
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            rows = conn.execute(_EVENTS_SQL, {"after": after, "limit": self.batch_size}).all()
            version = next(int(r.event_id) for r in rows if r.kind == "v")
            events = sorted(
                (LogEvent.from_row(r) for r in rows if r.kind != "v"), key=lambda e: e.event_id
            )
            config = None
            if version != known_version:
                config = load_config(conn)
                self._run_hooks(conn)
            batch = _Batch(events, config)
            # the cache is only mutated under self._lock, which catch_up holds meanwhile
            batch.decisions = _load_decisions(conn, events, self.decisions.contains, after)
        return batch

    # ------------------------------------------------------------------ applying
    def _install_config(
        self,
        config: ConfigSnapshot,
        restored: dict[PolicyKey, tuple[int, Policy]] | None = None,
    ) -> None:
        for key, spec in config.policies.items():
            if key in self.registry:
                continue
            try:
                if restored and key in restored:
                    last, policy = restored[key]
                    self.registry.install(spec, policy, last)
                else:
                    arms = config.initial_arms(spec)
                    self.registry.ensure(spec, arms, last_event_id=self.position)
            except (TypeError, ValueError) as exc:  # a spec the learners refuse: skip it
                log.error("policy %s@%s cannot be built: %s", key.name, key.version, exc)
        if restored is not None:
            lasts = [
                live.last_event_id
                for key in self.registry.policy_keys()
                if (live := self.registry.get(key)) is not None
            ]
            self.position = min(lasts, default=0)
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
                    self._install_config(batch.config)
                learned += await self._apply(batch)
                if len(batch.events) < self.batch_size:
                    break
            if self.metrics is not None:
                self.metrics.follower_last.set(self.position)
            await self._maybe_snapshot()
        return learned

    async def _apply(self, batch: _Batch) -> int:
        learned = 0
        for ev in batch.events:  # keep the batch's cached decisions from being evicted by it
            self.decisions.get(ev.decision_id)
        for n, ev in enumerate(batch.events):
            if n and n % self.yield_every == 0:
                await asyncio.sleep(0)  # let RPCs run between chunks of learning
            item = self.decisions.get(ev.decision_id)
            if item is None:
                item = batch.decisions.get(ev.decision_id)
                if item is None:
                    continue  # decision row not found (dropped partition): nothing to learn
                self._seed_rewards(item)
                self.decisions.put(ev.decision_id, item)
            if ev.kind == "o" and ev.outcome is not None:
                changed = self.registry.apply_outcome(item, ev.outcome, ev.event_id)
                self._learn_cost(item, ev)
            elif ev.rating is not None:
                changed = self.registry.apply_feedback(item, ev.rating, ev.event_id)
            else:
                changed = []
            learned += 1 if changed else 0
            self.position = ev.event_id
        if batch.events:
            self.registry.advance(self.position, len(batch.events))
            if self.metrics is not None:
                self.metrics.follower_applied.inc(len(batch.events))
        return learned

    def _learn_cost(self, item: DecisionEvents, ev: LogEvent) -> None:
        # A deterministic subsample (by event id, so every process learns the same events):
        # the River regressors cost ~0.2 ms per outcome, too much for every event at high rates.
        if ev.event_id % self.cost_learn_every or ev.event_id <= self.cost_last_event_id:
            return
        latency = ev.outcome.latency_ms if ev.outcome is not None else None
        if ev.output_tokens is None and latency is None:
            return
        with contextlib.suppress(TypeError, ValueError):
            self.cost_model.learn(
                item.model,
                item.features,
                output_tokens=None if ev.output_tokens is None else float(ev.output_tokens),
                latency_ms=latency,
            )

    def _seed_rewards(self, item: DecisionEvents) -> None:
        """Rewards the policies learned from this decision's earlier events (history)."""
        if item.outcome is None and not item.ratings:
            return
        from banditroute.service.core.policies import reward_of

        for key in (item.key, *item.shadows):
            live = self.registry.get(key)
            if live is not None:
                r = reward_of(live.spec.weights, item.outcome, item.ratings)
                if r is not None:
                    item.rewards[key] = r

    # ------------------------------------------------------------------ snapshots
    async def _maybe_snapshot(self) -> None:
        if self.snapshot_every <= 0:
            return
        due: list[tuple[PolicyKey, int, bytes]] = []
        for key in self.registry.policy_keys():
            live = self.registry.get(key)
            if live is None:
                continue
            # idle policies are snapshotted too (less often), so a restart never replays the
            # whole log just to position a policy that learned nothing
            if (
                live.since_snapshot >= self.snapshot_every
                or live.seen_since_snapshot >= 10 * self.snapshot_every
            ):
                due.append((key, live.last_event_id, policy_state.dumps(live.policy)))
                live.since_snapshot = live.seen_since_snapshot = 0
        if due:
            cost = (COST_MODEL_KEY, self.position, self.cost_model.dumps())
            due.append(cost)
            try:
                await asyncio.to_thread(self._save_snapshots, due)
            except Exception as exc:
                log.warning("could not save policy snapshots: %s", type(exc).__name__)

    def _save_snapshots(self, due: Sequence[tuple[PolicyKey, int, bytes]]) -> None:
        with self.engine.begin() as conn:
            for key, last, data in due:
                params = {"name": key.name, "version": key.version}
                conn.execute(_SAVE_SNAPSHOT_SQL, {**params, "last_event_id": last, "state": data})
                conn.execute(_PRUNE_SNAPSHOTS_SQL, {**params, "keep": self.keep_snapshots})

    async def snapshot_now(self, keys: Iterable[PolicyKey] | None = None) -> list[PolicyKey]:
        """Snapshot the given policies (default: all) at the current position."""
        due = []
        for key in list(keys) if keys is not None else self.registry.policy_keys():
            live = self.registry.get(key)
            if live is not None:
                due.append((key, live.last_event_id, policy_state.dumps(live.policy)))
                live.since_snapshot = live.seen_since_snapshot = 0
        await asyncio.to_thread(self._save_snapshots, due)
        return [k for k, _, _ in due]

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


def rebuild_policy(
    engine: Engine, spec: PolicySpec, arms: Sequence[str], dim: int, upto: int | None = None
) -> Policy:
    """Rebuild one policy version from the whole log (no snapshot), up to event ``upto``.

    ``arms`` are its initial arms (``ConfigSnapshot.initial_arms(spec)``). This is the
    reference a restored policy must equal byte for byte.
    """
    registry = PolicyRegistry(dim)
    live = registry.ensure(spec, arms, last_event_id=0)
    cache: dict[uuid.UUID, DecisionEvents] = {}
    with engine.connect() as conn:
        if upto is None:
            upto = int(conn.execute(_MAX_EVENT_SQL).scalar_one())
        rows = conn.execute(_POLICY_EVENTS_SQL, {"after": 0, "upto": upto}).all()
        events = [LogEvent.from_row(r) for r in rows]
        cache.update(_load_decisions(conn, events, lambda d: False, 0))
    for ev in events:
        item = cache.get(ev.decision_id)
        if item is None or spec.key not in (item.key, *item.shadows):
            continue
        if ev.kind == "o" and ev.outcome is not None:
            registry.apply_outcome(item, ev.outcome, ev.event_id)
        elif ev.rating is not None:
            registry.apply_feedback(item, ev.rating, ev.event_id)
    return live.policy
