"""Load the demo business (idempotent: running it again changes nothing that is already there).

Each app contributes its part in a `demo.py` module with `seed(*, now, log)`, called in the order of
INSTALLED_APPS (inventory before booking before payments …), so a person trying the product after
`make run` finds a whole business to book. Apps are found by name, not imported here, which keeps
`core` free of dependencies on the apps above it.
"""

import importlib
import importlib.util

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from core.roles import FRONT_DESK, MANAGER

DEMO_LOGINS = [
    # (username, password, role, description)
    ("admin", "admin", None, "manager, everything"),
    ("desk", "desk", FRONT_DESK, "front desk: bookings, refunds up to the limit, check-in"),
]


class Command(BaseCommand):
    help = "Load the demo business and staff logins (safe to run repeatedly)."

    def handle(self, *args, **options):
        now = timezone.now()
        with transaction.atomic():
            self._staff_logins()
            for config in apps.get_app_configs():
                module_name = f"{config.name}.demo"
                if importlib.util.find_spec(module_name) is None:
                    continue
                importlib.import_module(module_name).seed(now=now, log=self.stdout.write)
        for username, password, _, description in DEMO_LOGINS:
            self.stdout.write(f"login: {username} / {password} ({description})")

    def _staff_logins(self) -> None:
        User = get_user_model()
        for username, password, role, _ in DEMO_LOGINS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True, "is_superuser": role is None}
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            if role:
                user.groups.add(Group.objects.get(name=role))
            else:
                user.groups.add(Group.objects.get(name=MANAGER))
