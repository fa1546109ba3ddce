"""The Celery application: Redis broker, tasks discovered from each app's `tasks.py`.

Configuration lives in Django settings under the CELERY_ prefix, so the schedule and broker are
visible next to everything else (`config.settings.base`).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("booking")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
