"""The door-staff role: may check tickets in at /door/, and nothing else (no admin, no bookings)."""

from django.db import migrations

ROLE = "Door staff"


def create_role(apps, schema_editor):
    # Permissions are normally created after all migrations have run; the role needs this one now.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="ticketing", model="checkinlist")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="scan_tickets",
        defaults={"name": "Can check tickets in at the door"},
    )
    group, _ = Group.objects.get_or_create(name=ROLE)
    group.permissions.add(permission)


def remove_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=ROLE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ticketing", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role, remove_role)]
