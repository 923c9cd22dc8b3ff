"""The dashboard as a WSGI application, mounted on the metrics HTTP server
(:meth:`banditroute.service.metrics.Metrics.mount`).

URLs (all ``GET``; ``?window=hour|day|week|month``, default ``day``):

==============================  ===========================================================
``/``                           overview: every route, every experiment
``/routes/<name>[?tenant=]``    one route
``/experiments/<name>``         one experiment
``POST /login``                 form login: sets the session cookie, redirects to ``/``
==============================  ===========================================================

Access: with an admin token configured, every page needs it, as ``Authorization: Bearer
<token>``, as ``?token=<token>`` once (the answer sets an ``HttpOnly``, ``SameSite=Strict``
cookie holding an HMAC of the token, never the token, and redirects to the same URL without
it), or through the login form. Without a token configured the dashboard is open, like
``/metrics``. Read-only: any other method gets 405.

Bad input gets a small HTML page: unknown route or experiment 404, bad window 400, no token
401, a database that cannot be reached 503; anything unexpected is logged with its traceback and
answered 500 with a generic message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from banditroute.service.core.budgets import BudgetBook
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.dashboard import pages, views
from banditroute.service.dashboard.rollup import HourlyRollup
from banditroute.service.dashboard.windows import BadWindow, parse_window
from banditroute.service.experiments.live import MAX_EXPERIMENTS
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.stats import experiment_status
from banditroute.service.storage.models.experiment import ACTIVE_STATES

__all__ = ["COOKIE", "Dashboard"]

log = logging.getLogger(__name__)

#: Name of the session cookie.
COOKIE = "banditroute_dashboard"

_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'",
    ),
]
_MAX_FORM_BYTES = 4096

StartResponse = Callable[..., Any]


class _Answer(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Dashboard:
    """The read-only dashboard of one server process.

    Parameters
    ----------
    engine
        Database the pages read (aggregate queries, see
        :mod:`banditroute.service.dashboard.queries`).
    registry
        This process's live policies, shown as the learnt state; without it (or for a policy
        version this process has not loaded) the latest snapshot in the database is shown.
    budgets
        This process's budget controllers (its follower's), shown for budgeted routes; without
        them a route's budget is shown as configured, without its state.
    admin_token
        Token that protects every page; ``None``: open.
    clock
        Current time (tests).
    rollup
        Serve day, week and month windows from the in-memory hourly rollup
        (:mod:`banditroute.service.dashboard.rollup`), built in the background on first use;
        False: always aggregate the raw rows.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        registry: PolicyRegistry | None = None,
        budgets: BudgetBook | None = None,
        admin_token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        rollup: bool = True,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.budgets = budgets
        self._token = admin_token or None
        self._session = (
            hmac.new(admin_token.encode(), b"banditroute-dashboard", hashlib.sha256).hexdigest()
            if admin_token
            else ""
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self.rollup = HourlyRollup(engine, clock=self._clock) if rollup else None
        self._warm_lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def warm_experiments(self, *, wait: bool = False) -> None:
        """Build the live sums of the running and paused experiments in a background thread,
        once (with the rollup on), so that their pages answer from the sums at once
        (:mod:`banditroute.service.experiments.live`); ``wait``: until it is done."""
        with self._warm_lock:
            if self._warming is None and self.rollup is not None:
                self._warming = threading.Thread(
                    target=self._warm, name="dashboard-experiments", daemon=True
                )
                self._warming.start()
            thread = self._warming
        if wait and thread is not None:
            thread.join()

    def _warm(self) -> None:
        try:
            views_ = ExperimentManager(self.engine).list_experiments()
            for view in [v for v in views_ if v.state in ACTIVE_STATES][:MAX_EXPERIMENTS]:
                experiment_status(self.engine, view)
        except Exception:
            log.warning("dashboard: building the experiments' live sums failed", exc_info=True)

    # -- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = list(_HEADERS)
        try:
            status, body, extra = self._handle(environ)
            headers += extra
        except _Answer as exc:
            status, body = exc.status, self._error(exc.status, exc.message)
        except BadWindow as exc:
            status, body = HTTPStatus.BAD_REQUEST, self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except views.NotFoundPage as exc:
            status, body = HTTPStatus.NOT_FOUND, self._error(HTTPStatus.NOT_FOUND, str(exc))
        except OperationalError:
            log.warning("dashboard: database unavailable", exc_info=True)
            status = HTTPStatus.SERVICE_UNAVAILABLE
            body = self._error(status, "The database cannot be reached; try again shortly.")
        except Exception:
            log.exception("dashboard: error answering %s", environ.get("PATH_INFO", ""))
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            body = self._error(status, "Internal error; the server log has the details.")
        data = body.encode("utf-8")
        headers.append(("Content-Length", str(len(data))))
        start_response(f"{status.value} {status.phrase}", headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else data]

    @staticmethod
    def _error(status: HTTPStatus, message: str) -> str:
        if status == HTTPStatus.UNAUTHORIZED:
            return pages.login_html(message)
        return pages.error_page(f"{status.value} {status.phrase}", message)

    def _handle(self, environ: dict[str, Any]) -> tuple[HTTPStatus, str, list[tuple[str, str]]]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = _path(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if method == "POST" and path == "/login":
            return self._login(environ)
        if method not in ("GET", "HEAD"):
            raise _Answer(HTTPStatus.METHOD_NOT_ALLOWED, "The dashboard is read-only.")
        if self._token is not None:
            given = query.pop("token", [None])[0]
            if given is not None:
                if not hmac.compare_digest(given.encode(), self._token.encode()):
                    raise _Answer(HTTPStatus.UNAUTHORIZED, "Wrong admin token.")
                rest = urlencode({k: v[0] for k, v in query.items()})
                return self._redirect(path + (f"?{rest}" if rest else ""))
            if not self._authorized(environ):
                raise _Answer(HTTPStatus.UNAUTHORIZED, "This dashboard needs the admin token.")
        self.warm_experiments()
        window = parse_window(_one(query, "window"))
        now = self._clock()
        if path == "/":
            return (
                HTTPStatus.OK,
                pages.overview_html(
                    views.overview(self.engine, window, now, self.rollup, self.budgets)
                ),
                [],
            )
        if path.startswith("/routes/") and len(path) > len("/routes/"):
            name = _name(path[len("/routes/") :], "route")
            tenant = _name(_one(query, "tenant") or "", "tenant")
            page = views.route_page(
                self.engine, self.registry, tenant, name, window, now, self.rollup, self.budgets
            )
            return HTTPStatus.OK, pages.route_html(page), []
        if path.startswith("/experiments/") and len(path) > len("/experiments/"):
            name = _name(path[len("/experiments/") :], "experiment")
            page_e = views.experiment_page(self.engine, name, window, now)
            return HTTPStatus.OK, pages.experiment_html(page_e), []
        raise _Answer(HTTPStatus.NOT_FOUND, f"No page at {path[:200]!r}.")

    # -- access ---------------------------------------------------------------------------
    def _authorized(self, environ: dict[str, Any]) -> bool:
        assert self._token is not None
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self._token.encode()
        ):
            return True
        cookie = _cookie(environ.get("HTTP_COOKIE", ""), COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._session.encode())

    def _redirect(self, to: str) -> tuple[HTTPStatus, str, list[tuple[str, str]]]:
        cookie = f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict"
        body = pages.error_page("303 See Other", "Signed in.")
        return HTTPStatus.SEE_OTHER, body, [("Location", to), ("Set-Cookie", cookie)]

    def _login(self, environ: dict[str, Any]) -> tuple[HTTPStatus, str, list[tuple[str, str]]]:
        if self._token is None:
            return self._redirect("/")
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), _MAX_FORM_BYTES)
        except ValueError:
            length = 0
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        given = _one(form, "token") or ""
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise _Answer(HTTPStatus.UNAUTHORIZED, "Wrong admin token.")
        return self._redirect("/")


def _name(value: str, kind: str) -> str:
    """``value`` if it can name a stored entity; no such entity (404) otherwise."""
    if len(value) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise views.NotFoundPage(f"no {kind} with that name")
    return value


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _path(environ: dict[str, Any]) -> str:
    raw = environ.get("PATH_INFO", "") or "/"
    # WSGI hands the path over as latin-1 decoded bytes; names are UTF-8.
    try:
        raw = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raw = unquote(raw)
    return raw


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
