"""Gunicorn's production settings, in one place: the container (Dockerfile, docker-compose.yml) and
``make bench`` all run with these. Gunicorn reads this file by itself when started from the
repository root; the command line adds only what differs per place (``--bind``).

Threads, not sync workers: a turn waits on the LLM for up to the gateway deadline × agents, and a
threaded worker keeps answering (health included) meanwhile instead of being killed at ``timeout``.
"""

worker_class = "gthread"
workers = 3
threads = 8
timeout = 300
accesslog = "-"
