"""The SEI custom CI/CD payload (docs/sei-contract.md) as a typed model.

Required fields are required here too, so a payload SEI would reject or silently drop cannot be
built: a parameter value is always a string, integers are integers, the GUID is a UUID.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Param(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    name: str
    value: str


class Trigger(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    job_run_number: str | None = None
    direct_parents: list[Trigger] | None = None


class Step(BaseModel):
    """A stage or a step, in Blue Ocean's field names, which are the ones SEI reads.

    `id` is the Jenkins flow-node id: SEI keys stages on (run, id) and steps on (stage, id),
    both NOT NULL, and abandons every stage of a run when one lacks it.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=50)
    displayName: str
    displayDescription: str | None = None
    result: str
    state: str
    durationInMillis: int = Field(ge=0)  # null crashes SEI's processing of the whole run
    startTime: str | None = None


class Stage(Step):
    steps: list[Step] = Field(default_factory=list)


class JobRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    stages: list[Stage]


class Artifact(BaseModel):
    model_config = ConfigDict(frozen=True)

    input: bool | None = None  # absent in a manifest stays absent, as the plugin sends it
    output: bool | None = None
    type: str = Field(min_length=1)
    location: str = Field(min_length=1)
    name: str = Field(min_length=1)
    qualifier: str = Field(min_length=1)
    hash: str | None = None
    metadata: dict[str, str] | None = None


class CicdPayload(BaseModel):
    model_config = ConfigDict(frozen=True)

    pipeline: str = Field(min_length=1)
    job_full_name: str = Field(min_length=1)
    qualified_name: str = Field(min_length=1)
    instance_guid: str
    instance_name: str = Field(min_length=1)
    instance_url: str
    start_time: int
    duration: int = Field(ge=0)
    result: str = Field(min_length=1)
    build_number: int
    execution_id: str
    web_url: str
    user_id: str
    trigger_chain: list[Trigger]
    job_run_params: list[Param]
    scm_commit_ids: list[str]
    repo_url: str | None = None
    branch_name: str | None = None
    project_name: str | None = None
    module_name: str | None = None
    ci: bool
    cd: bool
    job_run: JobRun | None = None
    artifacts: list[Artifact] | None = None
    cfr_status: bool | None = None
    themes: list[str] | None = None

    @field_validator("instance_guid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))

    def to_json(self) -> dict[str, Any]:
        """The request body: absent optional fields are left out rather than sent as null."""
        return self.model_dump(mode="json", exclude_none=True)


def push_artifacts_body(payload: dict[str, Any], integration_id: str) -> dict[str, Any] | None:
    """The optional /v1/cicd/push_artifacts body for a mapped build; None without artifacts."""
    artifacts = payload.get("artifacts") or []
    if not artifacts:
        return None
    finished = payload["start_time"] + payload["duration"]
    return {
        "integration_id": integration_id,
        "repository": payload.get("repo_url") or payload["job_full_name"],
        "job_name": payload["job_full_name"],
        "job_run_number": str(payload["build_number"]),
        "artifacts": [
            {
                "name": a["name"],
                "location": a["location"],
                "tag": a["qualifier"],
                "digest": a.get("hash") or "",
                "type": a["type"],
                "artifact_created_at": finished,
            }
            for a in artifacts
        ],
    }
