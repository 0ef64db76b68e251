"""The operator's rules by job and result, and the glob lists settings are written in.

On the ground floor: the mapping reads rules through the `PayloadRule` protocol
(agent/mapping/rules.py), never this module.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def split_globs(value: Any) -> list[str]:
    """A list of globs, or one string of them separated by commas (as environment values are)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


# The results Jenkins gives a finished build: a rule naming another could never match, and the
# metrics label builds by them.
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")


class Rule(BaseModel):
    """Optional payload fields for the builds of matching jobs (and results).

    A misspelt key would make the rule match every job (`job:` for `jobs:`), so unknown keys are
    refused; so is a result Jenkins never gives.
    """

    model_config = ConfigDict(extra="forbid")

    jobs: list[str] = Field(default_factory=lambda: ["*"])
    results: list[str] = Field(default_factory=list)  # empty: any result
    cfr_status: bool | None = None
    themes: list[str] | None = None
    project_name: str | None = None

    _globs = field_validator("jobs", mode="before")(split_globs)

    @field_validator("results", mode="before")
    @classmethod
    def _results(cls, value: Any) -> Any:
        words = split_globs(value) if isinstance(value, str) else value
        if not isinstance(words, list):
            return value
        upper = [str(word).strip().upper() for word in words]
        unknown = [word for word in upper if word not in RESULTS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a Jenkins result (one of {', '.join(RESULTS)})"
            )
        return upper
