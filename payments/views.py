"""Checkout, the return page after Stripe, and Stripe's webhook.

The checkout page shows the hold's countdown and the amounts now and later, and mounts Stripe's
Payment Element; the browser confirms the payment with Stripe directly. The return page and the
webhook both record the outcome through the same idempotent service, whichever comes first.
"""

import json
import logging

import stripe
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from booking.models import Booking
from booking.selectors import booking_get_by_manage_token
from core.errors import ApplicationError
from inventory.locks import CapacityBusy
from payments.models import Payment
from payments.selectors import payment_terms
from payments.services import checkout_prepare, payment_refresh, webhook_event_handle

logger = logging.getLogger(__name__)


def _booking_or_404(token: str) -> Booking:
    try:
        return booking_get_by_manage_token(token=token)
    except Booking.DoesNotExist:
        raise Http404("This booking link is not valid.") from None


@require_safe
def checkout(request: HttpRequest, token: str) -> HttpResponse:
    """Pay for a held booking: countdown, amounts now and later, and the card form."""
    booking = _booking_or_404(token)
    now = timezone.now()
    context = {
        "booking": booking,
        "token": token,
        "zone": booking.offering.location.time_zone,
        "now": now,
        "booking_url": reverse("booking:detail", args=[token]),
    }
    try:
        context["checkout"] = checkout_prepare(booking=booking, now=now)
    except ApplicationError as error:
        context["problem"] = error.message
        context["terms"] = payment_terms(booking=booking, now=now)
        return render(request, "payments/checkout.html", context, status=409)
    context["terms"] = context["checkout"].terms
    context["stripe_js"] = settings.STRIPE_JS_URL
    context["publishable_key"] = settings.STRIPE_PUBLISHABLE_KEY
    context["return_url"] = request.build_absolute_uri(reverse("payments:return", args=[token]))
    return render(request, "payments/checkout.html", context)


@require_safe
def checkout_return(request: HttpRequest, token: str) -> HttpResponse:
    """Where Stripe sends the customer back: say truthfully whether they are booked, pending or not."""
    booking = _booking_or_404(token)
    intent_id = request.GET.get("payment_intent") or request.GET.get("setup_intent") or ""
    payment = (
        Payment.objects.filter(booking=booking)
        .filter(
            **(
                {"stripe_setup_intent_id": intent_id}
                if intent_id.startswith("seti_")
                else {"stripe_payment_intent_id": intent_id}
            )
        )
        .first()
        if intent_id
        else Payment.objects.filter(booking=booking).order_by("-id").first()
    )
    if payment is not None:
        try:
            payment_refresh(payment=payment, now=timezone.now(), actor="customer")
        except (ApplicationError, stripe.StripeError) as error:
            logger.warning("Return page could not refresh payment %s: %s", payment.pk, error)
        payment.refresh_from_db()
    booking.refresh_from_db()
    template = "payments/return.html#outcome" if request.htmx else "payments/return.html"
    waiting = payment is not None and (
        (booking.is_holding and payment.status != Payment.Status.FAILED)
        or (
            payment.purpose == Payment.Purpose.CHARGE
            and payment.status not in (Payment.Status.FAILED, Payment.Status.SUCCEEDED)
        )
    )
    return render(
        request,
        template,
        {
            "booking": booking,
            "payment": payment,
            "waiting": waiting,
            "token": token,
            "zone": booking.offering.location.time_zone,
            "booking_url": reverse("booking:detail", args=[token]),
            "checkout_url": reverse("payments:checkout", args=[token]),
        },
    )


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's events: verified by signature, handled once, 503 when busy so Stripe tries again."""
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature", ""), settings.STRIPE_WEBHOOK_SECRET
        )
    except (ValueError, stripe.SignatureVerificationError):
        return HttpResponse("invalid signature", status=400, content_type="text/plain")
    payload = json.loads(request.body)
    try:
        outcome = webhook_event_handle(event=payload, now=timezone.now())
    except CapacityBusy:
        return HttpResponse("busy, retry", status=503, content_type="text/plain")
    logger.info("Stripe event %s (%s): %s", event["id"], event["type"], outcome)
    return HttpResponse(outcome, content_type="text/plain")
