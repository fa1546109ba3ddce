"""The door page and what a phone installs with it: who may open it, its service worker and web manifest."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

pytestmark = pytest.mark.django_db

DOOR_STAFF = "Door staff"


def door_staff_role() -> Group:
    """The role migration ticketing/0002 creates (made again: a transactional test may have flushed it)."""
    group, _ = Group.objects.get_or_create(name=DOOR_STAFF)
    group.permissions.add(
        Permission.objects.get(content_type__app_label="ticketing", codename="scan_tickets")
    )
    return group


@pytest.fixture
def door_staff():
    user = get_user_model().objects.create_user("dora", password="door-pass-123")
    user.groups.add(door_staff_role())
    return user


@pytest.fixture
def customer_services():
    return get_user_model().objects.create_user("cass", password="desk-pass-123")


def test_a_visitor_is_sent_to_the_door_sign_in(client):
    response = client.get("/door/")
    assert response.status_code == 302
    assert response["Location"] == "/door/login/?next=/door/"


def test_the_sign_in_page_is_for_phones_and_leads_to_the_door(client):
    page = client.get("/door/login/?next=/door/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<title>Door sign-in" in html and "<h1>Door sign-in</h1>" in html
    assert 'name="viewport"' in html and 'autocomplete="username"' in html
    assert '<input type="hidden" name="next" value="/door/">' in html


def test_door_staff_sign_in_and_get_the_scanner(client, door_staff):
    response = client.post(
        "/door/login/", {"username": "dora", "password": "door-pass-123", "next": "/door/"}
    )
    assert response.status_code == 302 and response["Location"] == "/door/"

    page = client.get("/door/")
    html = page.content.decode()
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")  # never_cache: the service worker keeps the copy
    assert html.lstrip().startswith("<!doctype html>")  # the context comment is not sent
    assert '<link rel="manifest" href="/door/manifest.webmanifest">' in html
    assert 'data-service-worker="/door/sw.js"' in html
    assert 'data-name-hint="Main door"' in html
    scripts = [
        "vendor/tweetnacl-1.0.3.min.js",
        "vendor/jsQR-1.4.0.js",
        *(
            f"ticketing/{part}.js"
            for part in ("door-util", "door-store", "door-api", "door-judge", "door-answer")
        ),
        "ticketing/door-camera.js",
        "ticketing/door.js",
    ]
    positions = [html.index(f'src="/static/{script}"') for script in scripts]
    assert positions == sorted(positions)  # each part after what it uses, the app last
    assert 'action="/door/logout/"' in html


def test_a_wrong_password_says_so_on_the_sign_in_page(client, door_staff):
    page = client.post("/door/login/", {"username": "dora", "password": "nope", "next": "/door/"})
    assert page.status_code == 200
    assert "Please enter a correct username and password" in page.content.decode()


def test_someone_without_door_access_gets_a_page_saying_so_with_a_way_out(client, customer_services):
    client.force_login(customer_services)
    page = client.get("/door/")
    html = page.content.decode()
    assert page.status_code == 403
    assert "<h1>No door access</h1>" in html and "cass" in html
    assert 'action="/door/logout/"' in html and "csrfmiddlewaretoken" in html

    response = client.post("/door/logout/")
    assert response.status_code == 302 and response["Location"] == "/door/login/"
    assert client.get("/door/").status_code == 302  # signed out


def test_the_service_worker_is_javascript_scoped_to_the_door_and_never_cached_by_http(client):
    response = client.get("/door/sw.js")
    script = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert response["Service-Worker-Allowed"] == "/door/"
    assert response["Cache-Control"] == "no-cache"
    assert 'addEventListener("fetch"' in script
    assert '"/door/api/"' in script  # the API is left alone


def test_the_web_manifest_installs_the_door_as_an_app(client):
    response = client.get("/door/manifest.webmanifest")
    manifest = json.loads(response.content)
    assert response["Content-Type"] == "application/manifest+json"
    assert manifest["start_url"] == "/door/" and manifest["scope"] == "/door/"
    assert manifest["display"] == "standalone"
    assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200


def test_the_page_script_and_styles_are_served(client):
    for path in (
        "/static/ticketing/door.js",
        "/static/ticketing/door-util.js",
        "/static/ticketing/door-store.js",
        "/static/ticketing/door-api.js",
        "/static/ticketing/door-judge.js",
        "/static/ticketing/door-answer.js",
        "/static/ticketing/door-camera.js",
        "/static/ticketing/door.css",
        "/static/ticketing/door-icon-192.png",
        "/static/ticketing/door-icon-512.png",
        "/static/vendor/tweetnacl-1.0.3.min.js",
        "/static/vendor/jsQR-1.4.0.js",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
