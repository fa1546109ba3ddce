from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

# Dotted, lowercase, at least two parts: "booking.hold.created", "payments.refund.issued".
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class TimelineEntry(models.Model):
    """One state change of one subject, written in the same transaction as the change.

    *acting_user* is the staff or customer account that caused the change, when there is one;
    *actor* names who acted in words for every entry ("system", "stripe", "customer", a username), so
    entries written by tasks and webhooks still say who did it. *subject* is the object whose history
    this entry belongs to (a booking, a session); related objects go into *data* as ids.
    """

    action = models.CharField(max_length=120)
    subject_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    subject_id = models.CharField(max_length=64)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=150)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "timeline entries"
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "created_at"], name="timeline_subject_time"),
            models.Index(fields=["action", "created_at"], name="timeline_action_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(action__regex=ACTION_PATTERN), name="timeline_action_dotted"),
            models.CheckConstraint(condition=~Q(actor=""), name="timeline_actor_named"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor}"
