"""The timeline: every change leaves one entry, written and rolled back with the change itself."""

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from core.audit.models import TimelineEntry
from core.audit.selectors import timeline_list_for_subject
from core.audit.services import timeline_entry_record
from core.errors import TransactionRequired

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager():
    return get_user_model().objects.create_user("maria", is_staff=True)


@pytest.fixture
def subject():
    # Any saved model can have a timeline; core owns none of the business ones.
    return get_user_model().objects.create_user("subject")


def test_an_entry_records_who_did_what_to_which_subject_and_when(manager, subject, now):
    with transaction.atomic():
        timeline_entry_record(
            subject=subject,
            action="staff.account.renamed",
            now=now,
            acting_user=manager,
            data={"old": "subject", "new": "renamed"},
        )
    [entry] = timeline_list_for_subject(subject=subject)
    assert (entry.action, entry.actor, entry.acting_user, entry.created_at) == (
        "staff.account.renamed",
        "maria",
        manager,
        now,
    )
    assert entry.data == {"old": "subject", "new": "renamed"}


def test_a_change_without_a_person_is_attributed_to_the_system_or_the_named_actor(subject, now):
    with transaction.atomic():
        timeline_entry_record(subject=subject, action="booking.hold.expired", now=now)
        timeline_entry_record(subject=subject, action="payments.webhook.received", now=now, actor="stripe")
    assert [e.actor for e in timeline_list_for_subject(subject=subject)] == ["system", "stripe"]


def test_an_entry_vanishes_with_the_transaction_that_wrote_it(subject, now):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        timeline_entry_record(subject=subject, action="booking.confirmed", now=now)
        1 / 0  # noqa: B018 - the change fails after its entry was written
    assert not timeline_list_for_subject(subject=subject).exists()


def test_entries_come_back_in_the_order_things_happened(subject, now):
    with transaction.atomic():
        for action in ("booking.hold.created", "payments.payment.succeeded", "booking.confirmed"):
            timeline_entry_record(subject=subject, action=action, now=now)  # same instant: insertion order
    assert [e.action for e in timeline_list_for_subject(subject=subject)] == [
        "booking.hold.created",
        "payments.payment.succeeded",
        "booking.confirmed",
    ]


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around this one
def test_writing_an_entry_outside_a_transaction_is_refused(subject, now):
    with pytest.raises(TransactionRequired, match="inside the caller's transaction"):
        timeline_entry_record(subject=subject, action="booking.confirmed", now=now)
    assert not TimelineEntry.objects.exists()


@pytest.mark.parametrize(
    "action", ["confirmed", "Booking.Confirmed", "booking..confirmed", "booking confirmed"]
)
def test_an_action_must_be_a_dotted_lowercase_name(subject, now, action):
    with pytest.raises(ValueError, match="dotted and lowercase"), transaction.atomic():
        timeline_entry_record(subject=subject, action=action, now=now)


def test_the_database_refuses_an_undotted_action_even_from_raw_orm_writes(subject, now):
    from django.contrib.contenttypes.models import ContentType

    with pytest.raises(IntegrityError, match="timeline_action_dotted"), transaction.atomic():
        TimelineEntry.objects.create(
            action="confirmed",
            subject_type=ContentType.objects.get_for_model(subject),
            subject_id=str(subject.pk),
            actor="system",
            created_at=now,
        )
