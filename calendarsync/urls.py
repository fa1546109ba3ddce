"""URL routes of calendarsync."""

app_name = "calendarsync"
urlpatterns: list = []
