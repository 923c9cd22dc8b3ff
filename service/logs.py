"""Process logging: one handler on the root logger, plain text or one JSON object per line.

Examples
--------
>>> import logging
>>> record = logging.LogRecord("banditroute", logging.INFO, __file__, 1, "ready", None, None)
>>> sorted(json.loads(JsonFormatter().format(record)))
['level', 'logger', 'msg', 'pid', 'ts']
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from banditroute.service.api.interceptors import request_id_var
from banditroute.service.config import Settings

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, request_id (inside an RPC), msg.

    Messages never carry prompt text or secrets (see :mod:`banditroute.service.security`, whose
    redaction runs on every record before any formatter).
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``settings.log_level`` (JSON with ``log_json``); once per process."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(settings.log_level)
