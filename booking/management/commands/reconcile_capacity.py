from django.core.management.base import BaseCommand
from django.utils import timezone

from booking.services import capacity_reconcile


class Command(BaseCommand):
    help = "Prove capacity counters and allocations equal the bookings behind them; --fix resets counters."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Reset drifting counters to the facts.")

    def handle(self, *args, fix=False, **options):
        drift = capacity_reconcile(now=timezone.now(), fix=fix)
        for item in drift:
            self.stdout.write(f"DRIFT {item}")
        if not drift:
            self.stdout.write("Counters and allocations match the bookings.")
        elif fix:
            self.stdout.write(f"{len(drift)} difference(s) found; counters were reset to the bookings.")
        else:
            self.stderr.write(f"{len(drift)} difference(s) found. Run with --fix to reset the counters.")
            raise SystemExit(1)
