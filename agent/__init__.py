"""jenkins-sei-agent: every finished Jenkins build, delivered to Harness SEI once."""

__version__ = "0.1.0"
