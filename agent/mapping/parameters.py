"""Build parameters as SEI's `job_run_params`: values as text, secrets never."""

from __future__ import annotations

import json
import re
from typing import Any

from agent.jenkins.reading import dicts, simple_class
from agent.sei.payload import Param

# Parameter values that must never leave the controller, whatever the job calls them.
_SECRET_PARAM = re.compile(r"Password|Credentials|FileParameter", re.IGNORECASE)


# Jenkins 1.x sends parameters without `_class`: then the name is all there is to go by, and
# any name that may hold a secret is held back (SSH_PASSPHRASE, DB_PASS, PWD, AUTH, API_KEY).
_SECRET_NAME = re.compile(r"pass|pwd|auth|token|key|secret|credential", re.IGNORECASE)


def parameters(actions: Any) -> list[Param]:
    params: list[Param] = []
    for action in actions:
        for raw in dicts(action.get("parameters")):
            name, value = raw.get("name"), raw.get("value")
            cls = simple_class(raw)
            if not isinstance(name, str) or value is None or _SECRET_PARAM.search(cls):
                continue
            if not cls and _SECRET_NAME.search(name):
                continue  # a class-less DB_PASSWORD may hold the password itself
            if isinstance(value, bool):
                text, inferred = ("true" if value else "false"), "BooleanParameterValue"
            elif isinstance(value, str):
                text, inferred = value, "StringParameterValue"
            elif isinstance(value, int | float):
                text, inferred = str(value), "StringParameterValue"
            else:
                text, inferred = json.dumps(value, sort_keys=True), "StringParameterValue"
            params.append(Param(type=cls or inferred, name=name, value=text))
    return params
