from django.apps import AppConfig


class StaffConfig(AppConfig):
    """What staff look at to run the day and the business: the day schedule (who is booked when, per
    location) and the reports (bookings, revenue, occupancy, no-shows, waitlist). It reads every app
    and owns no models: the permissions it checks are the booking app's."""

    name = "staff"
    verbose_name = "Staff operations"
