"""URL routes of payments."""

app_name = "payments"
urlpatterns: list = []
