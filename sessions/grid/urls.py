from django.urls import path

from sessions.grid import api as grid_api

app_name = "grid"

urlpatterns = [
    path("events/", grid_api.event_declare, name="event-declare"),
    path("events/<uuid:public_id>/report/", grid_api.event_report, name="event-report"),
]
