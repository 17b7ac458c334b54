"""Structured logs: one JSON object per line with the record's ``extra`` fields.

Values under keys that name secrets are masked, and bearer tokens or whsec secrets that end up
in a message are cut out, so a careless log call cannot leak a key.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

__all__ = ["configure_logging", "logging_config", "scrub"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}  # uvicorn: ANSI copy of msg
_SECRET_KEYS = re.compile(r"(secret|password|authorization|api_key|token)", re.I)
# pf_: API keys, pfs_: dashboard sessions, pfi_: invitations, pfd_: known devices, pfk_: URL signing keys
_SECRET_VALUES = re.compile(r"(Bearer\s+)\S+|whsec_[A-Za-z0-9+/=]+|pf[sidk]?_[A-Za-z0-9_-]{20,}")
# Query parameters that carry credentials: presigned S3 URLs (valid for an hour), signed
# local-storage URLs, keys a client put in the URL. The name stays (useful when debugging), the
# value goes. Matches in any text: access-log paths, messages, tracebacks.
_SECRET_PARAMS = re.compile(
    r"([?&;](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|sig|signature|token|access_token"
    r"|api_key|apikey|api-key|key|password|secret)=)[^&#\s\"']*",
    re.I,
)


# A password in a URL's userinfo (`https://user:pw@host/`): httpx logs every request's full URL,
# and a URL source may carry its origin's credentials.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s@]*@")


def scrub(text: str) -> str:
    text = _SECRET_VALUES.sub(lambda m: (m.group(1) or "") + "[redacted]", text)
    text = _URL_PASSWORD.sub(r"\1:[redacted]@", text)
    return _SECRET_PARAMS.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's access line, as fields: (client, method, path with query, HTTP version, status)
            client, method, path, _, status = record.args
            out.update(client=client, method=method, path=scrub(str(path)), status=status)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = format(ctx.trace_id, "032x")
            out["span_id"] = format(ctx.span_id, "016x")
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            out[key] = "[redacted]" if _SECRET_KEYS.search(key) else scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def logging_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """The whole logging setup as a ``dictConfig``: one stderr handler on the root logger, every
    other logger (uvicorn's error and access logs, Litestar's, arq's, ours) propagating to it.
    uvicorn applies it in each ``--workers`` process too."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"()": TextFormatter, "fmt": _TEXT}
    propagate = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"pixelflow": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "pixelflow"}
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # arq logs every job at INFO with its arguments; ours carry what matters.
            "arq": {"level": max(logging.WARNING, logging.getLevelName(level))},
            "uvicorn": propagate,
            "uvicorn.error": propagate,
            "uvicorn.access": propagate,
            "litestar": propagate,
        },
    }


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
