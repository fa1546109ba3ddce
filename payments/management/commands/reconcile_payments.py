from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from payments.services import payments_reconcile


class Command(BaseCommand):
    help = "Compare local payments with Stripe's and record what Stripe says (recovery after an outage)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=7, help="Look at payments changed in the last N days."
        )

    def handle(self, *args, days=7, **options):
        now = timezone.now()
        drift = payments_reconcile(now=now, since=now - timedelta(days=days))
        for item in drift:
            self.stdout.write(f"RECONCILED {item}")
        self.stdout.write(f"{len(drift)} payment(s) differed from Stripe and were brought in line.")
