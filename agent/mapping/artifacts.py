"""Artifacts: what the build's manifests declare, read as the official plugin reads them, then
the other files it archived."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from agent.jenkins.endpoints import MANIFEST_NAMES, artifact_path
from agent.jenkins.reading import dicts
from agent.jenkins.types import Job
from agent.sei.payload import Artifact


def parse_manifests(manifests: tuple[Any, ...]) -> tuple[list[Artifact], list[str]]:
    """Every archived manifest's artifacts, concatenated as the official plugin does."""
    artifacts: list[Artifact] = []
    problems: list[str] = []
    for manifest in manifests:
        found, skipped = parse_manifest(manifest)
        artifacts += found
        problems += skipped
    return artifacts, problems


_REQUIRED_ARTIFACT_FIELDS = ("type", "location", "name", "qualifier")


def parse_manifest(manifest: Any) -> tuple[list[Artifact], list[str]]:
    """Artifacts of a manifest in any of its three shapes, and why entries were skipped.

    Read as the official plugin reads it: `input`/`output` true only for true or "true" (any
    case), absent when absent; metadata values as text, nulls dropped; an entry whose type,
    location, name or qualifier is missing or blank is skipped.
    """
    if manifest is None:
        return [], []
    if isinstance(manifest, dict) and isinstance(manifest.get("artifacts"), list):
        entries = manifest["artifacts"]
    elif isinstance(manifest, dict) and isinstance(manifest.get("artifact"), dict):
        entries = [manifest["artifact"]]
    elif isinstance(manifest, dict):
        entries = [manifest]
    else:
        return [], ["the manifest is not a JSON object"]
    artifacts, problems = [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {index} is not an object")
            continue
        required = {
            k: _scalar_text(entry.get(k)) for k in ("type", "location", "name", "qualifier")
        }
        missing = [k for k, v in required.items() if not v or not v.strip()]
        if missing:
            problems.append(f"entry {index} lacks {', '.join(missing)}")
            continue
        metadata = entry.get("metadata")
        try:
            artifacts.append(
                Artifact(
                    **{k: v for k, v in required.items() if v},
                    input=_as_boolean(entry["input"]) if "input" in entry else None,
                    output=_as_boolean(entry["output"]) if "output" in entry else None,
                    hash=_scalar_text(entry.get("hash")) or None,
                    metadata={
                        str(k): text
                        for k, v in metadata.items()
                        if (text := _json_text(v)) is not None
                    }
                    if isinstance(metadata, dict)
                    else None,
                )
            )
        except ValidationError as exc:
            problems.append(f"entry {index}: {exc.errors()[0]['msg']}")
    return artifacts, problems


def _as_boolean(value: Any) -> bool:
    """Jackson's asBoolean as the plugin applies it: true, or the text "true" in any case."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _scalar_text(value: Any) -> str | None:
    """A JSON string, number or boolean as text; None for null, objects and lists."""
    if value is None or isinstance(value, dict | list):
        return None
    return _json_text(value)


def _json_text(value: Any) -> str | None:
    """A JSON value as text the way Jackson writes it: `true`, `3`, `1.5`; null is None, and so
    is what no JSON holds (NaN, Infinity, which Python's parser lets through)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except ValueError:
        return None


def archived_artifacts(
    build: dict[str, Any], job: Job, instance_url: str, max_artifacts: int
) -> list[Artifact]:
    """Archived files other than manifests, as output artifacts (`AGENT_MAX_ARTIFACTS` of them).

    Named by their path in the build and qualified by the build, so that (name, qualifier),
    which SEI correlates on, is unique per execution across jobs.
    """
    archived = []
    number = build["number"]
    qualifier = f"{job.full_name}#{number}"
    for entry in dicts(build.get("artifacts")):
        relative = entry.get("relativePath")
        if not isinstance(relative, str) or not relative.strip() or relative in MANIFEST_NAMES:
            continue
        name = entry.get("fileName")
        if not isinstance(name, str) or not name.strip():
            name = relative.rsplit("/", 1)[-1]
        location = artifact_path(job.names, number, relative, job.path_containers)
        archived.append(
            Artifact(
                type=_file_type(name),
                location=instance_url + location,
                name=relative,
                qualifier=qualifier,
                input=False,
                output=True,
            )
        )
    return archived[:max_artifacts]


def _file_type(name: str) -> str:
    lower = name.lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz"):
        if lower.endswith(double):
            return double[1:]
    stem, dot, extension = lower.rpartition(".")
    return extension if dot and stem else "file"
