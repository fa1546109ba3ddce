from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Operations"

    def ready(self) -> None:
        from core.roles import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="core.roles_sync")
