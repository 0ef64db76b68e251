"""Logging: readable text on a terminal, one JSON object per line in containers.

Every record passes a filter that blanks the configured secrets, as a last line of defence:
nothing in the agent formats a secret into a message on purpose.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from agent.config import Settings

_URL_CREDENTIALS = re.compile(r"(https?://)[^/@\s:]+:[^/@\s]+@")
_QUIET_LIBRARIES = ("filelock", "apscheduler", "httpx", "httpcore", "urllib3", "requests")


def redact(text: str, secrets: list[str]) -> str:
    """Blank credentials in URLs and every secret (of 4 characters or more) in `text`."""
    clean = _URL_CREDENTIALS.sub(r"\1***@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            clean = clean.replace(secret, "***")
    return clean


def secrets_of(settings: Settings) -> list[str]:
    """The configured secrets, which nothing the agent writes or serves may contain."""
    return [
        s.get_secret_value()
        for s in (settings.jenkins.api_token, settings.sei.api_key)
        if s is not None
    ]


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(getattr(record, "fields", {}))
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


def setup_logging(settings: Settings, *others: Settings) -> None:
    """Log as `settings` say, hiding the secrets of every controller served."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.agent.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    handler.addFilter(RedactSecrets([s for c in (settings, *others) for s in secrets_of(c)]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.agent.log_level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
