"""`run`: the agent as a long-running service (loop), its schedule, its health, and the HTTP
endpoints that show them (/healthz, /metrics, /status)."""
