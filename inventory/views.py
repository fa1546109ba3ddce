"""The catalogue and the offering page: what can be booked, found and shown live.

One URL per page; when htmx asks (a filter changed, the availability refreshes), the same view
renders only the part that changes (`#results`, `#availability`). Without JavaScript the forms and
links work as plain HTML.
"""

import zoneinfo
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from core.hooks import hook_results
from core.http import HtmxHttpRequest
from inventory.forms import SearchForm
from inventory.models import Offering, Resource
from inventory.selectors import (
    appointment_slot_list,
    offering_get_published,
    offering_search,
    session_availability_list,
)


def _business_today() -> date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(settings.BUSINESS_TIME_ZONE)).date()


@require_safe
@vary_on_headers("HX-Request")
def catalogue(request: HtmxHttpRequest) -> HttpResponse:
    """Find something to book: search and filters, results updated in place."""
    today = _business_today()
    form = SearchForm(request.GET or None, today=today)
    filters = form.filters()
    results = offering_search(filters=filters, now=timezone.now(), max_starts=6)
    context = {"form": form, "results": results, "filters": filters, "query": request.GET.urlencode()}
    template = "inventory/catalogue.html#results" if request.htmx else "inventory/catalogue.html"
    return render(request, template, context)


@require_safe
@vary_on_headers("HX-Request")
def offering_detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """An offering: what it is, its rules and price, and what can be booked now (refreshed live)."""
    try:
        offering = offering_get_published(slug=slug)
    except Offering.DoesNotExist:
        raise Http404("No such offering") from None
    now = timezone.now()
    zone = zoneinfo.ZoneInfo(offering.location.time_zone)
    today = now.astimezone(zone).date()
    start_day = max(parse_date(request.GET.get("from", "")) or today, today)
    context = {"offering": offering, "zone": offering.location.time_zone, "start_day": start_day}
    if not request.htmx:  # the terms are on the page around the availability, not in its refresh
        terms = hook_results("offering_terms", offering=offering)
        context["notes"] = [line for lines in terms for line in lines]
    if offering.kind == Offering.Kind.APPOINTMENT:
        days = 7
        provider = _provider(request, offering)
        start = datetime.combine(start_day, time(0)).replace(tzinfo=zone)
        slots = appointment_slot_list(
            offering=offering,
            start=start,
            end=start + timedelta(days=days),
            now=now,
            resource_id=provider.pk if provider else None,
        )
        by_day: dict[date, list] = defaultdict(list)
        for slot in slots:
            by_day[slot.starts_at.astimezone(zone).date()].append(slot)
        week = [start_day + timedelta(days=n) for n in range(days)]
        chosen = parse_date(request.GET.get("day", ""))
        if chosen not in week:
            chosen = next((d for d in week if by_day.get(d)), week[0])
        context.update(
            {
                "days": [(d, len(by_day.get(d, []))) for d in week],
                "day": chosen,
                "day_slots": by_day.get(chosen, []),
                "providers": _choosable_providers(offering),
                "provider": provider,
                "previous_week": start_day - timedelta(days=days) if start_day > today else None,
                "next_week": start_day + timedelta(days=days),
            }
        )
    else:
        start = datetime.combine(start_day, time(0)).replace(tzinfo=zone)
        sessions = session_availability_list(
            offering=offering, start=start, end=start + timedelta(days=28), now=now
        )
        resale: dict[int, dict] = {}
        for offers in hook_results("session_resale_offers", offering=offering, now=now):
            resale.update(offers)
        context.update(
            {
                "sessions": sessions,
                "resale": resale,
                "next_week": start_day + timedelta(days=28),
                "previous_week": start_day - timedelta(days=28) if start_day > today else None,
            }
        )
    template = (
        "inventory/offering_detail.html#availability" if request.htmx else "inventory/offering_detail.html"
    )
    return render(request, template, context)


def _choosable_providers(offering: Offering) -> list[Resource]:
    return list(
        Resource.objects.filter(
            pk__in=offering.requirements.filter(customer_chooses=True).values("candidates"),
            kind=Resource.Kind.STAFF,
            is_active=True,
        ).order_by("name")
    )


def _provider(request: HtmxHttpRequest, offering: Offering) -> Resource | None:
    try:
        wanted = int(request.GET.get("provider", ""))
    except ValueError:
        return None
    return next((p for p in _choosable_providers(offering) if p.pk == wanted), None)
