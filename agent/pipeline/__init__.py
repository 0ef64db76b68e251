"""Steps 4 and 5 of the flow, and the drivers of the whole: which builds to read (plan), one
build's details -> map -> post (worker), what became of it applied to the state and the report
and told to observers (ledger), a bounded runner that knows nothing of Jenkins, one run for one
controller (run), and `sync` and `backfill` over it."""

from agent.pipeline.report import Delivered, Observer, Outcome, Report
from agent.pipeline.run import Run, RunOptions

__all__ = ["Delivered", "Observer", "Outcome", "Report", "Run", "RunOptions"]
