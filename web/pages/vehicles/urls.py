from django.urls import path

from web.pages.vehicles import views

app_name = "vehicles"

urlpatterns = [
    path("", views.vehicle_list, name="list"),
    path("connect/", views.connect_start, name="connect"),
    path("connect/callback/", views.connect_callback, name="connect_callback"),
    path("<int:vehicle_id>/refresh/", views.vehicle_refresh, name="refresh"),
    path("<int:vehicle_id>/battery/", views.vehicle_battery, name="battery"),
    path("connections/<int:connection_id>/disconnect/", views.connection_disconnect, name="disconnect"),
]
