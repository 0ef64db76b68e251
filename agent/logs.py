"""Logging: readable text on a terminal, one JSON object per line in containers.

Every record passes a filter that blanks the configured secrets, as a last line of defence:
nothing in the agent formats a secret into a message on purpose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # all but the tab
_URL_CREDENTIALS = re.compile(r"(https?://)[^/@\s:]+:[^/@\s]+@")
_QUIET_LIBRARIES = ("filelock", "apscheduler", "httpx", "httpcore", "urllib3", "requests")


def forms(secret: str) -> list[str]:
    """Every form a secret takes in an error text: as it is, as repr and JSON escape it, and
    percent-encoded, longest first so that no form is left half blanked."""
    found = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """Blank credentials in URLs and every secret (of 4 characters or more) in `text`."""
    clean = _URL_CREDENTIALS.sub(r"\1***@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in forms(secret):
                clean = clean.replace(form, "***")
    return clean


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:  # a traceback may quote a secret too: format it here, redacted
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info), self._secrets)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


_FORMATTER = logging.Formatter()


def redact_uncaught(secrets: list[str]) -> None:
    """Tracebacks that reach no logger (an uncaught error, in any thread) are redacted too."""

    def excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, error, tb))
        sys.stderr.write(redact(text, secrets))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        excepthook(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)

    sys.excepthook = excepthook
    threading.excepthook = thread_hook


# The build a reader or sender thread is working on: its records carry it as `job` and `build`.
_BUILD: ContextVar[dict[str, Any] | None] = ContextVar("build", default=None)


@contextlib.contextmanager
def build_context(job: str, number: Any) -> Iterator[None]:
    """Records logged inside name the build (fields `job` and `build` in JSON logs)."""
    token = _BUILD.set({"job": job, "build": number})
    try:
        yield
    finally:
        _BUILD.reset(token)


class Outage:
    """Retries while a server fails are said once: the first failure as a warning, later ones
    only at debug level, and the recovery with the outage's length. One per side and client, so
    an outage of SEI during a run of 2,000 builds is two lines, not one per build per attempt.
    Threads that were still retrying when another got an answer flap for a moment: a failure
    within `QUIET` seconds of a recovery belongs to the same outage and is not said again."""

    QUIET = 60.0

    def __init__(self, side: str, logger: logging.Logger) -> None:
        self.side = side
        self._log = logger
        self._lock = threading.Lock()
        self._since: float | None = None  # failing since; None while it answers
        self._failures = 0
        self._said = False  # this outage was announced
        self._recovered = -self.QUIET  # when the last announced outage ended

    def retrying(self, error: BaseException | None, wait: float) -> None:
        now = time.monotonic()
        with self._lock:
            if self._since is None:
                self._since = now
                self._said = now - self._recovered >= self.QUIET
                say = self._said
            else:
                say = False
            self._failures += 1
        if say:
            self._log.warning(
                "%s failing: %s; retrying (in %.1fs), and saying no more until it answers",
                self.side,
                error,
                wait,
                extra={"fields": {"side": self.side, "retry_in_s": round(wait, 1)}},
            )
        else:
            self._log.debug("%s: %s; retrying in %.1fs", self.side, error, wait)

    def answered(self) -> None:
        now = time.monotonic()
        with self._lock:
            since, failures, said = self._since, self._failures, self._said
            if since is None:
                return
            self._since, self._failures = None, 0
            if said:
                self._recovered = now
        if said:
            self._log.warning(
                "%s answers again, after %d failed attempts in %.0fs",
                self.side,
                failures,
                now - since,
                extra={"fields": {"side": self.side, "failed_attempts": failures}},
            )


class TextFormatter(logging.Formatter):
    """Text lines whose message cannot forge another line: its control characters (a job
    named with a newline) are escaped as Python escapes them. Tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


class JsonFormatter(_JsonFormatter):
    """One JSON object a line (python-json-logger): time, level, logger, message, the build a
    worker is delivering, a record's `fields`, and its traceback as `exception`, also when
    the redaction filter has already formatted it into `exc_text`."""

    def __init__(self) -> None:
        super().__init__(
            "{message}", style="{", rename_fields={"exc_info": "exception"}, json_ensure_ascii=False
        )

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        log_record["level"] = record.levelname.lower()
        log_record["logger"] = record.name
        super().add_fields(log_record, record, message_dict)
        log_record.update(_BUILD.get() or {})
        log_record.update(log_record.pop("fields", None) or {})


def setup_logging(level: str, form: str, secrets: list[str]) -> None:
    """Log at `level` in `form` (text or json), hiding `secrets` (every controller's)."""
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    redact_uncaught(secrets)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
