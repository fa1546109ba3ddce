"""gunicorn's settings, the same for `make run` and production (`gunicorn -c config/gunicorn.py`).

Threads rather than processes: a booking request mostly waits on PostgreSQL and Stripe, and threads
share one connection pool per process. Each process's pool holds as many connections as it has
threads, so a burst can never open more than WEB_PROCESSES × WEB_THREADS connections (8 by default,
far below PostgreSQL's 100): extra requests wait in the listen queue instead of failing with "too many
clients". Size WEB_PROCESSES × WEB_THREADS + the worker's concurrency + beat below max_connections.
"""

import os

bind = f"{os.environ.get('WEB_BIND', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_PROCESSES", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
# A request is done in milliseconds; one stuck for 30 s (a hung outside service) is killed and its
# process replaced rather than holding a thread and a connection for ever.
timeout = 30
graceful_timeout = 10
backlog = 2048  # a sale-day burst waits here, bounded by the threads above, rather than being refused
accesslog = os.environ.get("WEB_ACCESS_LOG") or None  # "-" for stdout
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")

# Read by the settings in each process: the pool matches the threads unless set explicitly.
os.environ.setdefault("DATABASE_POOL_MAX", str(threads))
