"""HTTP for both sides: one httpx client per side (client.py) within a whole-request deadline
(deadline.py), same-origin redirects (origin.py), TLS and proxies (proxy.py), byte caps
(body.py); the retry policy (retry.py), the failures (errors.py), and what both sides' clients
do alike (side.py)."""
