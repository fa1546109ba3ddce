"""The demo mailbox: what the site sent, readable by staff (and nobody else) under `make run`."""

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives

from standins.mailbox import Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox(tmp_path, settings):
    box = Mailbox.start(tmp_path / "mailbox")
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", box.port
    settings.DEV_MAILBOX_DIR = str(box.folder)
    yield box
    box.stop()


def test_staff_read_every_email_the_demo_sent(client, mailbox):
    message = EmailMultiAlternatives(
        "Confirmed: Yoga", "Plain words", "shop@example.com", ["ann@example.com"]
    )
    message.attach_alternative("<p>Rich <strong>words</strong></p>", "text/html")
    message.attach("ABC.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")
    message.send()

    assert client.get("/staff/mailbox/").status_code == 302  # staff only: to the login page
    client.force_login(get_user_model().objects.create_user("desk", is_staff=True))
    listing = client.get("/staff/mailbox/").content.decode()
    assert "Confirmed: Yoga" in listing and "ann@example.com" in listing
    [name] = [p.name for p in mailbox.folder.glob("*.eml")]
    shown = client.get(f"/staff/mailbox/{name}").content.decode()
    assert "Plain words" in shown and "&lt;strong&gt;words&lt;/strong&gt;" in shown and "ABC.ics" in shown
    assert client.get("/staff/mailbox/..%2Fsecret.eml").status_code == 404


def test_without_the_demo_mailbox_the_page_does_not_exist(admin_client, settings):
    settings.DEV_MAILBOX_DIR = ""
    assert admin_client.get("/staff/mailbox/").status_code == 404
