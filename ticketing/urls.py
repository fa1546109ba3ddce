"""URL routes of ticketing."""

app_name = "ticketing"
urlpatterns: list = []
