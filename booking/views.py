"""Customer pages of booking: the booking form and the booking's own page (reached by its signed link).

Each view translates the request, makes one domain call and renders the result; every error a
customer can cause comes back as a message on the same page, with what to do next.
"""

from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_safe
from django_htmx.http import HttpResponseClientRedirect

from booking.forms import BookingForm, WaitlistForm
from booking.models import Booking
from booking.notifications import booking_ics, calendar_links
from booking.selectors import (
    booking_charges_due,
    booking_customer_cancel_refusal,
    booking_customer_reschedule_refusal,
    booking_get_by_manage_token,
    booking_items,
    booking_manage_token,
    session_places_for_new_booking,
)
from booking.services import (
    InvalidBooking,
    booking_accept_offer,
    booking_attendees_update,
    booking_cancel,
    booking_reschedule,
    cancellation_quote,
    reschedule_options,
)
from core.errors import ApplicationError
from core.hooks import hook_results
from core.http import SeeOther
from inventory.errors import Unavailable
from inventory.locks import CapacityBusy
from inventory.models import Offering, Session
from inventory.selectors import (
    offering_get_published,
    session_availability_get,
    session_get_for_booking,
    session_seat_map,
)


def _offering_or_404(slug: str) -> Offering:
    try:
        return offering_get_published(slug=slug)
    except Offering.DoesNotExist:
        raise Http404("No such offering") from None


def _target(request: HttpRequest, slug: str) -> tuple[Offering, Session | None, datetime | None]:
    """What is being booked: the offering and its session (one query) or start time, from the query string."""
    session_id = request.GET.get("session")
    if session_id:
        try:
            session = session_get_for_booking(session_id=int(session_id), offering_slug=slug)
        except (ValueError, Session.DoesNotExist):
            raise Http404("Choose a session of this offering first") from None
        return session.offering, session, None
    offering = _offering_or_404(slug)
    starts_at = parse_datetime(request.GET.get("start", ""))
    if offering.kind != Offering.Kind.APPOINTMENT or starts_at is None or starts_at.tzinfo is None:
        raise Http404("Choose a time first")
    return offering, None, starts_at


def _preferred_resource(request: HttpRequest, offering: Offering) -> dict[str, str]:
    """Keep the stylist chosen on the offering page selected on the form (?resource=<id>)."""
    wanted = request.GET.get("resource", "")
    if offering.kind != Offering.Kind.APPOINTMENT or not wanted.isdigit():
        return {}
    return {
        f"resource_{requirement.pk}": wanted
        for requirement in offering.requirements.filter(customer_chooses=True, candidates=int(wanted))
    }


def booking_url(booking: Booking) -> str:
    return reverse("booking:detail", args=[booking_manage_token(booking=booking)])


@require_http_methods(["GET", "HEAD", "POST"])
def booking_new(request: HttpRequest, slug: str) -> HttpResponse:
    """The booking form for one session or start time; POST holds the places and moves on."""
    offering, session, starts_at = _target(request, slug)
    now = timezone.now()
    places_now = (
        session_places_for_new_booking(
            session_id=session.pk, idempotency_key=request.POST.get("idempotency_key", ""), now=now
        )
        if request.method == "POST" and session is not None
        else None
    )
    if places_now is not None and places_now.sold_out:
        # Most answers in a rush are this one: say it from one unlocked read, without the form.
        template = "booking/sold_out.html#answer" if request.htmx else "booking/sold_out.html"
        context = {"offering": offering, "session": session, "zone": offering.location.time_zone}
        return render(request, template, context, status=409)
    initial = _preferred_resource(request, offering)
    form = BookingForm(
        request.POST or None, offering=offering, session=session, starts_at=starts_at, initial=initial
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                booking = form.place(now=now, counters=places_now.counters if places_now else None)
            except forms.ValidationError:
                status = 422
            except ApplicationError as error:
                form.add_error(None, error.message)
                status = (
                    409 if isinstance(error, Unavailable) else 503 if isinstance(error, CapacityBusy) else 422
                )
            else:
                token = booking_manage_token(booking=booking)
                if booking.is_holding and settings.BOOKING_CHECKOUT_URL_NAME:
                    next_url = reverse(settings.BOOKING_CHECKOUT_URL_NAME, args=[token])
                else:
                    next_url = booking_url(booking)
                return HttpResponseClientRedirect(next_url) if request.htmx else SeeOther(next_url)
        else:
            status = 422
    attendees = request.POST.getlist("attendee") if request.method == "POST" else []
    slots = (
        range(1, offering.max_places_per_booking + 1) if offering.kind != Offering.Kind.APPOINTMENT else []
    )
    context = {
        "attendee_slots": [(n, attendees[n - 1] if n <= len(attendees) else "") for n in slots],
        "offering": offering,
        "session": session,
        "starts_at": starts_at,
        "start": session.starts_at if session else starts_at,
        "form": form,
        "zone": offering.location.time_zone,
    }
    if session is not None:
        context["availability"] = session_availability_get(session=session, now=now)
        context["seat_map"] = session_seat_map(session=session)
        context["ticket_rows"] = [
            (tt, form[f"qty_{tt.ticket_type_id}"])
            for tt in context["availability"].ticket_types
            if f"qty_{tt.ticket_type_id}" in form.fields
        ]
        if offering.waitlist_enabled and not context["availability"].bookable:
            context["waitlist_form"] = WaitlistForm()
    template = (
        "booking/booking_form.html#form"
        if request.htmx and request.method == "POST"
        else "booking/booking_form.html"
    )
    return render(request, template, context, status=status)


@require_http_methods(["POST"])
def waitlist_join_view(request: HttpRequest, slug: str) -> HttpResponse:
    offering, session, _ = _target(request, slug)
    if session is None:
        raise Http404("Choose a session first")
    form = WaitlistForm(request.POST)
    joined, status = None, 422
    if form.is_valid():
        try:
            joined = form.join(offering=offering, session=session, now=timezone.now())
            status = 200
        except ApplicationError as error:
            form.add_error(None, error.message)
    return render(
        request,
        "booking/waitlist_joined.html",
        {
            "offering": offering,
            "session": session,
            "form": form,
            "entry": joined,
            "zone": offering.location.time_zone,
        },
        status=status,
    )


@require_safe
def booking_detail(request: HttpRequest, token: str) -> HttpResponse:
    """A booking's own page: status, what and when, and what happens next."""
    try:
        booking = booking_get_by_manage_token(token=token)
    except Booking.DoesNotExist:
        raise Http404("This booking link is not valid.") from None
    charges_due = booking_charges_due(booking=booking)
    return render(
        request,
        "booking/booking_detail.html",
        {
            "booking": booking,
            "items": booking_items(booking=booking),
            "zone": booking.offering.location.time_zone,
            "now": timezone.now(),
            "token": token,
            "calendar": calendar_links(booking) if booking.status == "confirmed" else None,
            "pay_url": reverse(settings.BOOKING_CHECKOUT_URL_NAME, args=[token])
            if (booking.is_holding or charges_due) and settings.BOOKING_CHECKOUT_URL_NAME
            else "",
            "charges_due": charges_due,
            "links": [
                link
                for links in hook_results("booking_page_links", booking=booking, token=token)
                for link in links
            ],
            "names_locked": next(iter(hook_results("attendee_names_locked", booking=booking)), ""),
        },
    )


@require_safe
def booking_calendar(request: HttpRequest, token: str) -> HttpResponse:
    """The booking as an .ics file ("add to calendar"), updated with every change."""
    try:
        booking = booking_get_by_manage_token(token=token)
    except Booking.DoesNotExist:
        raise Http404("This booking link is not valid.") from None
    method = "CANCEL" if booking.status in ("cancelled", "expired", "refunded") else "PUBLISH"
    ics = booking_ics(booking=booking, method=method, now=timezone.now())
    response = HttpResponse(ics, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{booking.reference}.ics"'
    return response


@require_http_methods(["POST"])
def booking_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Take a free place offered from the waitlist."""
    try:
        booking = booking_get_by_manage_token(token=token)
    except Booking.DoesNotExist:
        raise Http404("This booking link is not valid.") from None
    try:
        booking_accept_offer(booking=booking, now=timezone.now())
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "You have the place. See you there!")
    return SeeOther(reverse("booking:detail", args=[token]))


def _booking_for(token: str) -> Booking:
    try:
        return booking_get_by_manage_token(token=token)
    except Booking.DoesNotExist:
        raise Http404("This booking link is not valid.") from None


@require_http_methods(["GET", "HEAD", "POST"])
def booking_cancel_view(request: HttpRequest, token: str) -> HttpResponse:
    """Cancel from the manage link: the refund is shown before anything is cancelled."""
    booking = _booking_for(token)
    now = timezone.now()
    if request.method == "POST":
        try:
            _, quote = booking_cancel(
                booking=booking, now=now, by_customer=True, reason=request.POST.get("reason", "")[:200]
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            refund = (
                f" {quote.amount} {booking.currency} will be refunded to your card." if quote.amount else ""
            )
            messages.success(request, f"Your booking is cancelled.{refund} We have emailed you the details.")
        return SeeOther(reverse("booking:detail", args=[token]))
    return render(
        request,
        "booking/booking_cancel.html",
        {
            "booking": booking,
            "refusal": booking_customer_cancel_refusal(booking=booking, now=now),
            "quote": cancellation_quote(booking=booking, now=now),
            "token": token,
            "zone": booking.offering.location.time_zone,
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
def booking_reschedule_view(request: HttpRequest, token: str) -> HttpResponse:
    """Move to another free time or date: the new one taken and the old freed together, or no change."""
    booking = _booking_for(token)
    now = timezone.now()
    error_message = ""
    if request.method == "POST":
        choice = request.POST.get("choice", "")
        try:
            if booking.offering.kind == Offering.Kind.APPOINTMENT:
                new_start = parse_datetime(choice)
                if new_start is None:
                    raise InvalidBooking("Choose the new time.")
                booking_reschedule(booking=booking, new_starts_at=new_start, now=now, by_customer=True)
            else:
                session = Session.objects.filter(
                    pk=int(choice) if choice.isdigit() else 0, offering=booking.offering
                ).first()
                booking_reschedule(booking=booking, new_session=session, now=now, by_customer=True)
        except ApplicationError as error:
            error_message = error.message
        else:
            messages.success(
                request, "Your booking is moved. We have emailed you the new details and calendar invite."
            )
            return SeeOther(reverse("booking:detail", args=[token]))
    refusal = booking_customer_reschedule_refusal(booking=booking, now=now)
    return render(
        request,
        "booking/booking_reschedule.html",
        {
            "booking": booking,
            "token": token,
            "zone": booking.offering.location.time_zone,
            "refusal": refusal,
            "options": [] if refusal else reschedule_options(booking=booking, now=now),
            "error": error_message,
        },
        status=409 if error_message else 200,
    )


@require_http_methods(["POST"])
def booking_attendees_view(request: HttpRequest, token: str) -> HttpResponse:
    booking = _booking_for(token)
    names = {}
    for key, value in request.POST.items():
        if key.startswith("item_") and key.removeprefix("item_").isdigit():
            names[int(key.removeprefix("item_"))] = value
    try:
        booking_attendees_update(booking=booking, names=names, now=timezone.now(), by_customer=True)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The names are updated.")
    return SeeOther(reverse("booking:detail", args=[token]))
