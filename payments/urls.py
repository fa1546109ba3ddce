"""URL routes of payments."""

from django.urls import path

from payments import views

app_name = "payments"
urlpatterns = [
    path("pay/<str:token>/", views.checkout, name="checkout"),
    path("pay/<str:token>/return/", views.checkout_return, name="return"),
    path("stripe/webhook", views.stripe_webhook, name="webhook"),
]
