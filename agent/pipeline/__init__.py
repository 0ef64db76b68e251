"""Steps 4 and 5 of the flow, and the drivers of the whole: which builds to read (plan), one
build's details -> map -> post (worker), what became of it applied to the state and the report
(ledger), a bounded runner that knows nothing of Jenkins, and `sync` and `backfill` on top
(collector, sync, backfill)."""

from agent.pipeline.collector import Collector
from agent.pipeline.report import Outcome, Report

__all__ = ["Collector", "Outcome", "Report"]
