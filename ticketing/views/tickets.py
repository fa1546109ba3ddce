"""Customer pages of tickets: the booker's tickets with transfer and resale, a holder's ticket, resale offers.

The booker reaches their tickets through the booking's signed link and may transfer or resell
them; a ticket's own link (emailed to its holder) shows the ticket and its QR code but manages
nothing, so a friend given a ticket cannot cancel the booking behind it.
"""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from booking.models import Booking
from booking.selectors import booking_get_by_manage_token, booking_manage_token
from booking.services import CustomerDetails
from core.errors import ApplicationError
from core.http import SeeOther
from inventory.locks import CapacityBusy
from inventory.models import Session
from ticketing.forms import ResaleBuyForm, ResaleForm, TransferForm
from ticketing.models import ResaleListing, Ticket, TicketTransfer
from ticketing.qr import qr_png, qr_svg
from ticketing.selectors import (
    policy_for,
    resale_offers,
    resold_listings,
    ticket_actions,
    ticket_by_access_key,
    tickets_of_booking,
)
from ticketing.services import (
    resale_buy,
    resale_list,
    resale_withdraw,
    ticket_transfer,
    ticket_transfer_cancel,
)


def _booking_or_404(token: str) -> Booking:
    try:
        return booking_get_by_manage_token(token=token)
    except Booking.DoesNotExist:
        raise Http404("This booking link is not valid.") from None


def _booking_ticket_or_404(booking: Booking, code: str) -> Ticket:
    try:
        return Ticket.objects.select_related("booking_item", "ticket_type", "zone", "seat").get(
            booking=booking, code=code
        )
    except Ticket.DoesNotExist:
        raise Http404("No such ticket on this booking.") from None


def _ticket_or_404(access_key: str) -> Ticket:
    try:
        return ticket_by_access_key(access_key=access_key)
    except Ticket.DoesNotExist:
        raise Http404("This ticket link is not valid.") from None


@require_safe
def booking_tickets(request: HttpRequest, token: str) -> HttpResponse:
    """The booker's tickets: each QR code, and what they may do with it (transfer, resell)."""
    booking = _booking_or_404(token)
    now = timezone.now()
    tickets = tickets_of_booking(booking=booking)
    policy = policy_for(offering=booking.offering)
    for ticket in tickets:
        ticket.booking = booking
        ticket.qr = qr_svg(ticket.payload)
        ticket.actions = ticket_actions(ticket=ticket, now=now)
    return render(
        request,
        "ticketing/booking_tickets.html",
        {
            "booking": booking,
            "tickets": tickets,
            "resold": resold_listings(booking=booking),
            "token": token,
            "zone": booking.offering.location.time_zone,
            "policy": policy,
            "transfer_deadline": booking.starts_at - policy.transfer_until,
            "now": now,
            "pay_url": reverse(settings.BOOKING_CHECKOUT_URL_NAME, args=[token])
            if settings.BOOKING_CHECKOUT_URL_NAME
            else "",
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
def ticket_transfer_view(request: HttpRequest, token: str, code: str) -> HttpResponse:
    """Hand a ticket to someone else: their name and email; with a fee, pay it to complete."""
    booking = _booking_or_404(token)
    ticket = _booking_ticket_or_404(booking, code)
    ticket.booking = booking
    now = timezone.now()
    form = TransferForm(request.POST or None, initial={"to_name": ticket.holder_name})
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            transfer = ticket_transfer(
                ticket=ticket,
                to_name=form.cleaned_data["to_name"],
                to_email=form.cleaned_data["to_email"],
                now=now,
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            status = 409
        else:
            if transfer.status == TicketTransfer.Status.AWAITING_FEE:
                messages.info(
                    request, f"Pay the transfer fee of {transfer.fee} {booking.currency} to complete it."
                )
                return SeeOther(reverse(settings.BOOKING_CHECKOUT_URL_NAME, args=[token]))
            messages.success(
                request,
                f"Ticket sent to {transfer.to_name} ({transfer.to_email}). Its old code no longer works.",
            )
            return SeeOther(reverse("ticketing:booking_tickets", args=[token]))
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "ticketing/ticket_transfer.html",
        {
            "booking": booking,
            "ticket": ticket,
            "form": form,
            "token": token,
            "actions": ticket_actions(ticket=ticket, now=now),
            "zone": booking.offering.location.time_zone,
        },
        status=status,
    )


@require_POST
def ticket_transfer_cancel_view(request: HttpRequest, token: str, code: str) -> HttpResponse:
    booking = _booking_or_404(token)
    ticket = _booking_ticket_or_404(booking, code)
    transfer = ticket.transfers.filter(status=TicketTransfer.Status.AWAITING_FEE).first()
    if transfer is not None:
        ticket_transfer_cancel(transfer=transfer, now=timezone.now())
        messages.success(request, "The transfer is cancelled; the ticket stays yours and no fee is due.")
    return SeeOther(reverse("ticketing:booking_tickets", args=[token]))


@require_http_methods(["GET", "HEAD", "POST"])
def ticket_resale_view(request: HttpRequest, token: str, code: str) -> HttpResponse:
    """Offer a ticket for resale at up to the organiser's cap; the price comes back when it sells."""
    booking = _booking_or_404(token)
    ticket = _booking_ticket_or_404(booking, code)
    ticket.booking = booking
    now = timezone.now()
    actions = ticket_actions(ticket=ticket, now=now)
    form = ResaleForm(request.POST or None, cap=actions["resale_cap"], currency=booking.currency)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            resale_list(ticket=ticket, price=form.cleaned_data["price"], now=now)
        except ApplicationError as error:
            form.add_error(None, error.message)
            status = 409
        else:
            messages.success(
                request,
                "Your ticket is for sale. It stays valid until someone buys it; then its code stops "
                "working and the price is refunded to your card.",
            )
            return SeeOther(reverse("ticketing:booking_tickets", args=[token]))
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "ticketing/ticket_resale.html",
        {
            "booking": booking,
            "ticket": ticket,
            "form": form,
            "token": token,
            "actions": actions,
            "zone": booking.offering.location.time_zone,
        },
        status=status,
    )


@require_POST
def ticket_resale_withdraw_view(request: HttpRequest, token: str, code: str) -> HttpResponse:
    booking = _booking_or_404(token)
    ticket = _booking_ticket_or_404(booking, code)
    listing = ticket.listings.filter(status__in=["listed", "reserved"]).first()
    if listing is not None:
        try:
            resale_withdraw(listing=listing, now=timezone.now())
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Your ticket is no longer for sale.")
    return SeeOther(reverse("ticketing:booking_tickets", args=[token]))


@require_safe
def ticket_detail(request: HttpRequest, access_key: str) -> HttpResponse:
    """One ticket, as its holder shows it at the door: big QR code, name, seat, time and place."""
    ticket = _ticket_or_404(access_key)
    template = "ticketing/ticket_print.html" if request.GET.get("print") else "ticketing/ticket_detail.html"
    return render(
        request,
        template,
        {
            "ticket": ticket,
            "booking": ticket.booking,
            "offering": ticket.booking.offering,
            "zone": ticket.booking.offering.location.time_zone,
            "qr": qr_svg(ticket.payload) if ticket.status == Ticket.Status.VALID else "",
            "replacement": ticket.replaced_by
            if ticket.replaced_by and ticket.replaced_by.holder_email.lower() == ticket.holder_email.lower()
            else None,
        },
    )


@require_safe
def ticket_qr_png(request: HttpRequest, access_key: str) -> HttpResponse:
    ticket = _ticket_or_404(access_key)
    if ticket.status != Ticket.Status.VALID:
        raise Http404("This ticket is no longer valid.")
    response = HttpResponse(qr_png(ticket.payload, box_size=10), content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="ticket-{ticket.code}.png"'
    response["Cache-Control"] = "private, no-store"
    return response


def _session_or_404(session_id: int) -> Session:
    try:
        return Session.objects.select_related("offering__location").get(
            pk=session_id, offering__is_published=True
        )
    except Session.DoesNotExist:
        raise Http404("No such session.") from None


@require_safe
def resale_list_view(request: HttpRequest, session_id: int) -> HttpResponse:
    """Tickets fans offer for resale for one session, cheapest first."""
    session = _session_or_404(session_id)
    return render(
        request,
        "ticketing/resale_list.html",
        {
            "session": session,
            "offering": session.offering,
            "listings": resale_offers(session=session),
            "zone": session.offering.location.time_zone,
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
def resale_buy_view(request: HttpRequest, session_id: int, listing_id: int) -> HttpResponse:
    """Buy a resale ticket: the buyer's details, then the usual checkout (paid in full)."""
    session = _session_or_404(session_id)
    try:
        listing = ResaleListing.objects.select_related(
            "ticket__ticket_type", "ticket__zone", "ticket__seat"
        ).get(pk=listing_id, session=session)
    except ResaleListing.DoesNotExist:
        raise Http404("No such resale ticket.") from None
    form = ResaleBuyForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            buyer = resale_buy(
                listing=listing,
                customer=CustomerDetails(name=form.cleaned_data["name"], email=form.cleaned_data["email"]),
                idempotency_key=form.cleaned_data["idempotency_key"],
                now=timezone.now(),
            )
        except CapacityBusy as error:
            form.add_error(None, error.message)
            status = 503
        except ApplicationError as error:
            form.add_error(None, error.message)
            status = 409
        else:
            token = booking_manage_token(booking=buyer)
            if buyer.total_amount > 0 and settings.BOOKING_CHECKOUT_URL_NAME:
                return SeeOther(reverse(settings.BOOKING_CHECKOUT_URL_NAME, args=[token]))
            return SeeOther(reverse("booking:detail", args=[token]))
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "ticketing/resale_buy.html",
        {
            "session": session,
            "offering": session.offering,
            "listing": listing,
            "form": form,
            "zone": session.offering.location.time_zone,
        },
        status=status,
    )
