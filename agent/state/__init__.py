"""Step 5 of the flow: remember, per job, exactly which builds SEI accepted, in a locked file
written atomically. It knows neither Jenkins nor SEI: jobs are names, builds numbers and start
times."""

from agent.state.file import FORMAT_VERSION, StateError, StateFile
from agent.state.records import JobState, SentRuns

__all__ = ["FORMAT_VERSION", "JobState", "SentRuns", "StateError", "StateFile"]
