"""The heart of the agent: one finished Jenkins build, and what was read beside it, as the payload
SEI stores.

A pure function: no I/O, no clock. Actions are recognised by their fields, never by position
and not only by `_class`, because Jenkins 1.x omits `_class` and every controller pads the
action list with empty `{}` entries.
"""

from __future__ import annotations

import uuid
from typing import Any

from agent.jenkins.reading import dicts, is_int
from agent.jenkins.types import BuildDetails, Job
from agent.mapping.artifacts import archived_artifacts, parse_manifests
from agent.mapping.causes import nearest_only, trigger_chain, user_id
from agent.mapping.context import MapContext, Unmappable
from agent.mapping.parameters import parameters
from agent.mapping.rules import RuleMatch, is_cd, project_name_for
from agent.mapping.scm import commit_ids, declared_commits, git_checkouts, pick_checkout, repo_url
from agent.mapping.stages import map_job_run
from agent.sei.payload import Artifact, CicdPayload


def map_build(
    build: dict[str, Any],
    job: Job,
    ctx: MapContext,
    details: BuildDetails | None = None,
    *,
    manifests: tuple[list[Artifact], list[str]] | None = None,
) -> CicdPayload:
    """One finished Jenkins build as the payload SEI stores.

    `build` is the listing's JSON (`BUILD_FIELDS` in agent/jenkins/endpoints.py), `details` what
    was read beside it, `manifests` its manifests already parsed (`parse_manifests`), so that a
    caller who reports their problems parses them once. Raises Unmappable when the build lacks
    what every payload needs.
    """
    number, timestamp, result = build.get("number"), build.get("timestamp"), build.get("result")
    if not is_int(number) or not is_int(timestamp):
        raise Unmappable(f"{job.full_name}: build without a number or start time")
    if build.get("building") or not isinstance(result, str) or not result.strip():
        raise Unmappable(f"{job.full_name} #{number}: not finished")
    if not job.pipeline.strip() or not job.full_name.strip():
        raise Unmappable(f"#{number}: a job without a name")  # SEI would refuse it
    details = details or BuildDetails()
    actions = dicts(build.get("actions"))
    triggers = trigger_chain(actions, details.upstream, ctx.naming, (job.full_name, number))
    project, libraries = pick_checkout(git_checkouts(actions), job, ctx.library_repos)
    params = parameters(a for a in actions if "parameters" in a)
    duration = build.get("duration")
    rule = RuleMatch(ctx.rules, job.full_name, result)
    full_name = ctx.naming.full_name(job.names, job.path_containers)
    declared, _ = manifests or parse_manifests(details.manifests)
    cd = is_cd(job, ctx.cd_jobs, ctx.ci_jobs, declared)
    archived = archived_artifacts(build, job, ctx.instance_url, ctx.max_artifacts)
    return CicdPayload(
        pipeline=job.pipeline,
        job_full_name=full_name,
        qualified_name=ctx.naming.qualified_name(job.names, job.path_containers),
        instance_guid=ctx.instance_guid,
        instance_name=ctx.instance_name,
        instance_url=ctx.instance_url,
        start_time=timestamp,
        duration=max(duration, 0) if is_int(duration) else 0,
        result=result,
        build_number=number,
        execution_id=execution_id(ctx.instance_guid, job.full_name, number, timestamp),
        web_url=f"{ctx.instance_url}{job.path}{number}/",
        user_id=user_id(triggers),  # from the whole chain: its root may lie past a repeat
        trigger_chain=nearest_only(triggers),
        job_run_params=params,
        scm_commit_ids=commit_ids(build, project, libraries, declared_commits(actions, params)),
        repo_url=repo_url(project),
        branch_name=job.branch or (project.branch if project else None),
        module_name=job.module,
        project_name=project_name_for(rule.get("project_name") or ctx.project_name, job),
        ci=not cd,
        cd=cd,
        job_run=None if details.stages is None else map_job_run(details.stages),
        artifacts=declared + archived or None,
        cfr_status=rule.get("cfr_status"),
        themes=rule.get("themes"),
    )


def execution_id(instance_guid: str, full_name: str, number: int, timestamp: int) -> str:
    """Stable across retries; a restarted build number has another start time, so another id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_guid}/{full_name}#{number}@{timestamp}"))
