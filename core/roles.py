"""Staff roles as groups, with the permissions each holds. Checked on the server by every admin view
and staff action (Django's permission system), never only hidden in templates.

- Manager: every permission there is (new ones included: the roles are synced after each migrate).
- Front desk: bookings, customers, waitlist, refunds up to FRONT_DESK_REFUND_LIMIT, card captures,
  replacement tickets and check-in; can look at, not change, what is sold and the calendars.
- Door staff: checks tickets in at /door/, nothing else (no admin).

core names permissions by "app_label.codename" strings only, so it imports no app above it.
"""

MANAGER = "Manager"
FRONT_DESK = "Front desk"
DOOR_STAFF = "Door staff"

ROLES: dict[str, list[str] | None] = {
    MANAGER: None,  # all
    FRONT_DESK: [
        "booking.view_booking",
        "booking.change_booking",
        "booking.view_customer",
        "booking.change_customer",
        "booking.view_waitlistentry",
        "booking.change_waitlistentry",
        "payments.view_payment",
        "payments.change_payment",
        "payments.view_refund",
        "payments.add_refund",
        "ticketing.view_ticket",
        "ticketing.change_ticket",
        "ticketing.scan_tickets",
        "ticketing.view_checkinlist",
        "ticketing.view_scan",
        "inventory.view_location",
        "inventory.view_resource",
        "inventory.view_offering",
        "inventory.view_session",
        "inventory.view_busyblock",
        "calendarsync.view_calendarconnection",
        "core.view_timelineentry",
    ],
    DOOR_STAFF: ["ticketing.scan_tickets"],
}


def roles_sync(*, group_model, permission_model) -> None:
    """Make each role's group hold exactly its permissions (models passed in: migrations give their own)."""
    everything = list(permission_model.objects.select_related("content_type"))
    by_name = {f"{p.content_type.app_label}.{p.codename}": p for p in everything}
    for role, names in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        wanted = everything if names is None else [by_name[n] for n in names if n in by_name]
        group.permissions.set(wanted)


def roles_sync_after_migrate(sender, **kwargs) -> None:
    """post_migrate: permissions are created after migrations, so the roles are completed here too
    (and after a test database flush, which empties the groups)."""
    from django.contrib.auth.models import Group, Permission

    roles_sync(group_model=Group, permission_model=Permission)
