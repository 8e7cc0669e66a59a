from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from prepaid.formats import format_price


def home(request: HttpRequest) -> HttpResponse:
    # In the page's language: "0.45 EUR" in English, "0,45 €" in German.
    return render(request, "home.html", {"price": format_price(settings.PRICE_PER_KWH, settings.CURRENCY)})


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and `make run`'s wait loop."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"status": "ok", "database": connection.vendor})
