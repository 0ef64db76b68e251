"""jenkins-sei-agent: every finished Jenkins build, delivered to Harness SEI at least once."""

__version__ = "0.1.0"
