"""URL routes of booking."""

from django.urls import path

from booking import views

app_name = "booking"
urlpatterns = [
    path("o/<slug:slug>/book/", views.booking_new, name="new"),
    path("o/<slug:slug>/waitlist/", views.waitlist_join_view, name="waitlist"),
    path("b/<str:token>/", views.booking_detail, name="detail"),
    path("b/<str:token>/calendar.ics", views.booking_calendar, name="calendar"),
    path("b/<str:token>/accept/", views.booking_accept, name="accept"),
    path("b/<str:token>/cancel/", views.booking_cancel_view, name="cancel"),
    path("b/<str:token>/reschedule/", views.booking_reschedule_view, name="reschedule"),
    path("b/<str:token>/attendees/", views.booking_attendees_view, name="attendees"),
]
