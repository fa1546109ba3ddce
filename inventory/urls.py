"""URL routes of inventory: the catalogue and offering pages."""

from django.urls import path

from inventory import views

app_name = "inventory"
urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("o/<slug:slug>/", views.offering_detail, name="offering"),
]
