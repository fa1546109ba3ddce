import json
import re
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from core.audit.models import ACTION_PATTERN, TimelineEntry
from core.transactions import require_atomic

SYSTEM = "system"

_action_re = re.compile(ACTION_PATTERN)


def timeline_entry_record(
    *,
    subject: models.Model,
    action: str,
    now: datetime,
    acting_user: AbstractBaseUser | None = None,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> TimelineEntry:
    """Record that *action* happened to *subject*, inside the caller's transaction.

    The entry commits or rolls back with the change it describes, so the timeline never shows a
    change that did not happen nor misses one that did.

    :raises TransactionRequired: when called outside `transaction.atomic()`.
    :raises ValueError: when *action* is not a dotted lowercase name.
    """
    require_atomic("timeline_entry_record")
    if not _action_re.match(action):
        raise ValueError(
            f"Timeline action {action!r} must be dotted and lowercase, e.g. 'booking.confirmed'."
        )
    if subject.pk is None:
        raise ValueError("A timeline entry needs a saved subject.")
    [entry] = timeline_entries_record(
        subject=subject, entries=[(action, data or {})], now=now, acting_user=acting_user, actor=actor
    )
    return entry


def timeline_entries_record(
    *,
    subject: models.Model,
    entries: list[tuple[str, dict[str, Any]]],
    now: datetime,
    acting_user: AbstractBaseUser | None = None,
    actor: str | None = None,
) -> list[TimelineEntry]:
    """Record several changes of one subject that happened together (in order), in one statement."""
    if actor is None:
        actor = acting_user.get_username() if acting_user is not None else SYSTEM
    return timeline_entries_record_many(
        entries=[(subject, action, actor, data) for action, data in entries], now=now, acting_user=acting_user
    )


def timeline_entries_record_many(
    *,
    entries: list[tuple[models.Model, str, str, dict[str, Any]]],
    now: datetime,
    acting_user: AbstractBaseUser | None = None,
) -> list[TimelineEntry]:
    """Record (subject, action, actor, data) entries of several subjects (a door letting a crowd in),
    in one statement, inside the caller's transaction."""
    require_atomic("timeline_entries_record")
    for subject, action, _, _ in entries:
        if not _action_re.match(action):
            raise ValueError(
                f"Timeline action {action!r} must be dotted and lowercase, e.g. 'booking.confirmed'."
            )
        if subject.pk is None:
            raise ValueError("A timeline entry needs a saved subject.")
    user = acting_user if acting_user is not None and acting_user.is_authenticated else None
    made = [
        TimelineEntry(
            action=action,
            subject_type=ContentType.objects.get_for_model(subject, for_concrete_model=True),
            subject_id=str(subject.pk),
            acting_user=user,
            actor=actor or SYSTEM,
            data=data,
            created_at=now,
        )
        for subject, action, actor, data in entries
    ]
    # Plain SQL, one statement: every booking writes an entry while its places are locked, and the
    # ORM spent more building this insert than PostgreSQL running it. WITH ORDINALITY keeps the ids
    # in the order of the entries.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO core_timelineentry
                (action, subject_type_id, subject_id, acting_user_id, actor, data, created_at)
            SELECT e.action, e.subject_type_id, e.subject_id, %s, e.actor, e.data::jsonb, %s
              FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[])
                   WITH ORDINALITY AS e(action, subject_type_id, subject_id, actor, data, n)
             ORDER BY e.n
            RETURNING id
            """,
            [
                user.pk if user else None,
                now,
                [e.action for e in made],
                [e.subject_type_id for e in made],
                [e.subject_id for e in made],
                [e.actor for e in made],
                [json.dumps(e.data, cls=DjangoJSONEncoder) for e in made],
            ],
        )
        for entry, (pk,) in zip(made, cursor.fetchall(), strict=True):
            entry.pk = pk
    return made
