from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q


class OutboxMessage(models.Model):
    """A message to one handler, written in the transaction whose change it announces.

    `outbox_enqueue` writes one row per handler subscribed to the topic, so each handler is retried,
    backed off and marked delivered on its own: a failing calendar push never re-sends an email
    that already went out. A row moves pending -> delivered (its handler ran and committed) or
    pending -> dead (it failed `max_attempts` times and waits for a person).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Failed, needs a person"

    topic = models.CharField(max_length=120)
    handler = models.CharField(max_length=200)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    key = models.CharField(  # noqa: DJ001 - NULL means "no key"; the unique constraint skips it
        max_length=200,
        null=True,
        blank=True,
        help_text="Optional deduplication key: a second message with the same handler and key is dropped.",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    available_at = models.DateTimeField(
        help_text="Not delivered before this time (back-off after a failure)."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_at", "id"], condition=Q(status="pending"), name="outbox_pending_due"
            ),
            models.Index(fields=["topic", "created_at"], name="outbox_topic_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["handler", "key"], condition=Q(key__isnull=False), name="outbox_one_message_per_key"
            ),
            models.CheckConstraint(
                condition=Q(status="delivered", delivered_at__isnull=False)
                | (~Q(status="delivered") & Q(delivered_at__isnull=True)),
                name="outbox_delivered_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.topic} -> {self.handler} ({self.status})"
