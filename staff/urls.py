"""URL routes of the staff pages (signed-in staff; each view checks its permission)."""

from django.urls import path

from staff import report_views, schedule_views

app_name = "staff"
urlpatterns = [
    path("staff/reports/", report_views.reports_page, name="reports"),
    path("staff/schedule/", schedule_views.day_schedule, name="schedule"),
]
