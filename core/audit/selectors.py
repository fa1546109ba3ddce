from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import QuerySet

from core.audit.models import TimelineEntry


def timeline_list_for_subject(*, subject: models.Model) -> QuerySet[TimelineEntry]:
    """Every entry of *subject*, oldest first (ties broken by insertion order)."""
    return (
        TimelineEntry.objects.filter(
            subject_type=ContentType.objects.get_for_model(subject, for_concrete_model=True),
            subject_id=str(subject.pk),
        )
        .select_related("acting_user")
        .order_by("created_at", "id")
    )
