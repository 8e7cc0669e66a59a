"""The Stripe webhook endpoint: verify the signature on the raw body, store the event once,
enqueue its processing, answer in milliseconds (services.event_store, services.event_process)."""

import stripe
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monitoring.logs import log_context_add
from payments import services, stripe_api
from prepaid.jsonbody import problem


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store, enqueue, answer. Non-atomic: the stored event must survive a later failure."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > settings.STRIPE_WEBHOOK_MAX_BYTES:
        return problem(request, 413, "payload too large")
    body = request.body
    if len(body) > settings.STRIPE_WEBHOOK_MAX_BYTES:
        return problem(request, 413, "payload too large")
    try:
        event = stripe_api.webhook_verify(body, request.headers.get("Stripe-Signature", ""))
    except stripe.SignatureVerificationError:
        return problem(request, 400, "invalid signature")
    except ValueError as exc:  # a signed body that is not JSON we accept (jsonbody.loads)
        return problem(request, 400, f"malformed body: {exc}")
    log_context_add(event_id=event.get("id") if isinstance(event, dict) else None)
    malformed = services.event_malformed(event)
    if malformed:
        return problem(request, 400, f"not an event: {malformed}")
    stored = services.event_store(event=event)
    return JsonResponse({"received": True, "duplicate": stored is None})
