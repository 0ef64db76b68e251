"""Harness SEI's environments and their API bases (the agent appends `/v1/...`)."""

from __future__ import annotations

SEI_ENVIRONMENTS: dict[str, str] = {
    "prod0": "https://accounts.harness.io/sei/api",
    "prod1": "https://app.harness.io/prod1/sei/api",
    "prod2": "https://app.harness.io/gratis/sei/api",
    "prod3": "https://app3.harness.io/sei/api",
    "prod4": "https://prod4.harness.io/sei/api",
    "prod6": "https://prod6.harness.io/sei/api",
    "eu1": "https://accounts.eu.harness.io/sei/api",
}
