"""Load the demo business (idempotent: running it again changes nothing that is already there).

Each app adds its part of the demo through `core.demo`-style functions called from here, in
dependency order, so a person trying the product after `make run` finds something to book.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_LOGINS = [
    # (username, password, description)
    ("admin", "admin", "manager, everything"),
]


class Command(BaseCommand):
    help = "Load the demo business and staff logins (safe to run repeatedly)."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            for username, password, _ in DEMO_LOGINS:
                user, created = User.objects.get_or_create(
                    username=username, defaults={"is_staff": True, "is_superuser": True}
                )
                if created:
                    user.set_password(password)
                    user.save(update_fields=["password"])
        for username, password, description in DEMO_LOGINS:
            self.stdout.write(f"login: {username} / {password} ({description})")
