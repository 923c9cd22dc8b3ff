"""A read-only web dashboard of routes, models and experiments over time (issue #16).

Served by ``banditroute serve`` at ``/`` of the metrics HTTP port (``--metrics-port``), next to
``/metrics``: :class:`Dashboard` is a WSGI application that
:meth:`banditroute.service.metrics.Metrics.mount` puts there. Pages are rendered on the server as
HTML with inline SVG charts; see ``docs/dashboard.md``.
"""

from banditroute.service.dashboard.app import COOKIE, Dashboard
from banditroute.service.dashboard.windows import WINDOWS, BadWindow, Window, parse_window

__all__ = ["COOKIE", "WINDOWS", "BadWindow", "Dashboard", "Window", "parse_window"]
