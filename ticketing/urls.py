"""URL routes of ticketing."""

from django.contrib.auth import views as auth_views
from django.urls import path

from core.auth import ThrottledAuthenticationForm
from ticketing.views import door, tickets

app_name = "ticketing"
urlpatterns = [
    path("b/<str:token>/tickets/", tickets.booking_tickets, name="booking_tickets"),
    path("b/<str:token>/tickets/<str:code>/transfer/", tickets.ticket_transfer_view, name="transfer"),
    path(
        "b/<str:token>/tickets/<str:code>/transfer/cancel/",
        tickets.ticket_transfer_cancel_view,
        name="transfer_cancel",
    ),
    path("b/<str:token>/tickets/<str:code>/resale/", tickets.ticket_resale_view, name="resale_offer"),
    path(
        "b/<str:token>/tickets/<str:code>/resale/withdraw/",
        tickets.ticket_resale_withdraw_view,
        name="resale_withdraw",
    ),
    path("t/<str:access_key>/", tickets.ticket_detail, name="ticket"),
    path("t/<str:access_key>/qr.png", tickets.ticket_qr_png, name="ticket_qr"),
    path("resale/<int:session_id>/", tickets.resale_list_view, name="resale"),
    path("resale/<int:session_id>/<int:listing_id>/buy/", tickets.resale_buy_view, name="resale_buy"),
    # The door
    path("door/", door.door_page, name="door"),
    path(
        "door/login/",
        auth_views.LoginView.as_view(
            template_name="ticketing/door_login.html",
            redirect_authenticated_user=True,
            authentication_form=ThrottledAuthenticationForm,
        ),
        name="door_login",
    ),
    path("door/logout/", auth_views.LogoutView.as_view(next_page="ticketing:door_login"), name="door_logout"),
    path("door/sw.js", door.door_service_worker, name="door_sw"),
    path("door/manifest.webmanifest", door.door_web_manifest, name="door_manifest"),
    path("door/api/devices", door.api_device_register, name="api_devices"),
    path("door/api/lists", door.api_lists, name="api_lists"),
    path("door/api/lists/<int:list_id>/manifest", door.api_manifest, name="api_manifest"),
    path("door/api/lists/<int:list_id>/scan", door.api_scan, name="api_scan"),
    path("door/api/lists/<int:list_id>/status", door.api_status, name="api_status"),
    path("door/api/sync", door.api_sync, name="api_sync"),
]
