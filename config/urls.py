from django.contrib import admin
from django.urls import include, path

from core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("time-zone/", core_views.time_zone_choose, name="time-zone"),
    path("staff/mailbox/", core_views.dev_mailbox, name="dev-mailbox"),
    path("staff/mailbox/<str:name>", core_views.dev_mailbox_message, name="dev-mailbox-message"),
    path("admin/", admin.site.urls),
    path("", include("inventory.urls")),
    path("", include("booking.urls")),
    path("", include("payments.urls")),
    path("", include("ticketing.urls")),
    path("", include("calendarsync.urls")),
    path("", include("staff.urls")),
]

handler500 = "core.views.server_error"
