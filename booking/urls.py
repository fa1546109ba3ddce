"""URL routes of booking."""

app_name = "booking"
urlpatterns: list = []
