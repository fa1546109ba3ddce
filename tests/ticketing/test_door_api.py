"""The door's JSON API: a phone signs in once, then syncs with its own token; bad input changes nothing."""

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from tests.ticketing.helpers import adults, door_list, paid_tickets
from ticketing.models import DoorDevice, Scan
from ticketing.services import door_device_revoke

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tonight(concert):
    now = timezone.now()
    session = concert["session"]
    session.starts_at, session.ends_at = now + timedelta(hours=1), now + timedelta(hours=3)
    session.save()
    _, tickets = paid_tickets(concert["offering"], session, tickets=adults(concert, 3), now=now)
    return {**concert, "tickets": tickets, "list": door_list(session)}


@pytest.fixture
def door_staff(django_user_model):
    # The role comes from a migration; a flushed test database may have lost it, so make sure it is there.
    group, _ = Group.objects.get_or_create(name="Door staff")
    group.permissions.add(Permission.objects.get(codename="scan_tickets"))
    user = django_user_model.objects.create_user("door", password="door-pass-1")
    user.groups.add(group)
    return user


def register(client, user, name="North door"):
    client.force_login(user)
    response = client.post("/door/api/devices", json.dumps({"name": name}), content_type="application/json")
    return response


@pytest.fixture
def phone(client, door_staff):
    response = register(client, door_staff)
    assert response.status_code == 201
    client.logout()  # from here on the token alone speaks for the phone
    return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['token']}"}


def post(client, url, body, headers):
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def test_a_phone_scans_with_its_token_and_the_door_sees_name_seat_and_counts(client, tonight, phone):
    ticket = tonight["tickets"][0]
    answer = post(
        client,
        f"/door/api/lists/{tonight['list'].pk}/scan",
        {"id": str(uuid.uuid4()), "raw": ticket.payload},
        phone,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["result"] == "valid" and body["ticket"]["name"] == ticket.holder_name
    assert body["ticket"]["seat"] == ticket.seat.label and body["counts"]["admitted"] == 1
    assert body["counts"]["expected"] == 3
    assert Scan.objects.get().door == "North door"

    again = post(
        client,
        f"/door/api/lists/{tonight['list'].pk}/scan",
        {"id": str(uuid.uuid4()), "raw": ticket.code},
        phone,
    ).json()
    assert again["result"] == "already_in" and again["first_entry"]["door"] == "North door"


def test_lists_and_manifest_give_a_phone_what_it_needs_offline(client, tonight, phone):
    lists = client.get("/door/api/lists", **phone).json()["lists"]
    assert [entry["id"] for entry in lists] == [tonight["list"].pk]
    manifest = client.get(f"/door/api/lists/{tonight['list'].pk}/manifest", **phone).json()
    assert manifest["public_key"] and len(manifest["tickets"]) == 3
    since = manifest["server_time"]
    delta = client.get(f"/door/api/lists/{tonight['list'].pk}/manifest", {"modified_since": since}, **phone)
    assert delta.json()["tickets"] == []
    bad = client.get(
        f"/door/api/lists/{tonight['list'].pk}/manifest", {"modified_since": "yesterday"}, **phone
    )
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]


def test_a_synced_batch_with_one_bad_scan_is_refused_whole(client, tonight, phone):
    good = {
        "id": str(uuid.uuid4()),
        "list_id": tonight["list"].pk,
        "raw": tonight["tickets"][0].payload,
        "scanned_at": timezone.now().isoformat(),
        "shown_result": "valid",
    }
    bad = {**good, "id": "not-a-uuid"}
    refused = post(client, "/door/api/sync", {"scans": [good, bad]}, phone)
    assert refused.status_code == 400 and "UUID" in refused.json()["error"]
    assert not Scan.objects.exists()

    accepted = post(client, "/door/api/sync", {"scans": [good]}, phone)
    assert accepted.status_code == 200 and accepted.json()["results"][0]["result"] == "valid"
    assert post(client, "/door/api/sync", {"scans": [good]}, phone).status_code == 200
    assert Scan.objects.get().offline


def test_nonsense_is_answered_with_a_message(client, tonight, phone):
    url = f"/door/api/lists/{tonight['list'].pk}/scan"
    assert client.post(url, "{not json", content_type="application/json", **phone).status_code == 400
    assert post(client, url, {"id": str(uuid.uuid4()), "raw": ""}, phone).status_code == 400
    assert (
        post(client, "/door/api/lists/999999/scan", {"id": str(uuid.uuid4()), "raw": "X"}, phone).status_code
        == 404
    )
    assert not Scan.objects.exists()


def test_a_phone_without_a_valid_token_is_turned_away(client, tonight, phone, door_staff):
    url = f"/door/api/lists/{tonight['list'].pk}/scan"
    body = {"id": str(uuid.uuid4()), "raw": tonight["tickets"][0].payload}
    assert post(client, url, body, {}).status_code == 401
    assert post(client, url, body, {"HTTP_AUTHORIZATION": "Bearer made-up"}).status_code == 401

    door_device_revoke(device=DoorDevice.objects.get(), now=timezone.now())  # the phone was lost
    assert post(client, url, body, phone).status_code == 401
    assert not Scan.objects.exists()


def test_someone_taken_off_the_door_team_can_no_longer_sync(client, tonight, phone, door_staff):
    door_staff.groups.clear()
    assert client.get("/door/api/lists", **phone).status_code == 401


def test_only_door_staff_can_register_a_phone_and_door_staff_cannot_open_the_admin(
    client, tonight, door_staff, django_user_model
):
    visitor = django_user_model.objects.create_user("visitor", password="visitor-pass-1")
    assert register(client, visitor).status_code == 403
    client.logout()
    client.force_login(door_staff)
    assert client.get("/admin/").status_code == 302  # to the admin's own login: not staff
    assert client.get("/door/").status_code == 200
