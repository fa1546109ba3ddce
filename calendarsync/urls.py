"""URL routes of calendarsync."""

from django.urls import path

from calendarsync import views

app_name = "calendarsync"
urlpatterns = [
    path("calendar/connect/<int:pk>/", views.connect, name="connect"),
    path("calendar/oauth/callback/", views.oauth_callback, name="oauth_callback"),
    path("calendar/push/google", views.push_google, name="push_google"),
    path("calendar/push/microsoft", views.push_microsoft, name="push_microsoft"),
]
