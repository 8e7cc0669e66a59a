"""The Stripe webhook endpoint: verify the signature on the raw body, store the event once,
enqueue its processing, answer in milliseconds (services.event_store, services.event_process)."""

import stripe
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import services, stripe_api


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store, enqueue, answer. Non-atomic: the stored event must survive a later failure."""
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.STRIPE_WEBHOOK_MAX_BYTES:
        return HttpResponse("payload too large", status=413)
    body = request.body
    if len(body) > settings.STRIPE_WEBHOOK_MAX_BYTES:
        return HttpResponse("payload too large", status=413)
    try:
        event = stripe_api.webhook_verify(body, request.headers.get("Stripe-Signature", ""))
    except stripe.SignatureVerificationError:
        return HttpResponse("invalid signature", status=400)
    except ValueError:  # includes UnicodeDecodeError: the body is not UTF-8 JSON
        return HttpResponse("malformed body: not UTF-8 JSON", status=400)
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        return HttpResponse("not an event: a JSON object with an id and a type was expected", status=400)
    stored = services.event_store(event=event)
    return JsonResponse({"received": True, "duplicate": stored is None})
