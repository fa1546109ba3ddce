"""The staff roles (Manager, Front desk, Door staff) as groups with their permissions; see core/roles.py.

Permissions are normally created after all migrations have run; the roles need them now, so they are
created here for every app first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from core.roles import ROLES, roles_sync


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_sync(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0003_offering_reminder_hours"),
        ("booking", "0004_staff_permissions"),
        ("payments", "0002_payment_booking_charge"),
        ("ticketing", "0002_door_staff_role"),
        ("calendarsync", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
