"""The catalogue's search form: every filter is a query-string parameter, so a search is a shareable URL."""

from datetime import date as Date
from datetime import timedelta

from django import forms

from inventory.models import Offering, Resource
from inventory.selectors import TIME_OF_DAY, SearchFilters, category_list, location_list, provider_list

SPANS = [(1, "1 day"), (3, "3 days"), (7, "a week"), (14, "2 weeks"), (31, "a month")]


class SearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Haircut, yoga, concert…"}),
    )
    date = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    days = forms.TypedChoiceField(label="For", choices=SPANS, coerce=int, required=False, initial=7)
    location = forms.ModelChoiceField(
        label="Where", queryset=location_list(), required=False, empty_label="Anywhere"
    )
    category = forms.ChoiceField(label="What", required=False)
    provider = forms.ModelChoiceField(
        label="With", queryset=provider_list(), required=False, empty_label="Anyone"
    )
    kind = forms.ChoiceField(
        label="Type", required=False, choices=[("", "All types"), *Offering.Kind.choices]
    )
    time = forms.ChoiceField(
        label="Time of day",
        required=False,
        choices=[("", "Any time"), *[(k, k.capitalize()) for k in TIME_OF_DAY]],
    )
    price_min = forms.DecimalField(label="Price from", required=False, min_value=0, decimal_places=2)
    price_max = forms.DecimalField(label="up to", required=False, min_value=0, decimal_places=2)
    available = forms.BooleanField(label="Only with places free", required=False)

    def __init__(self, *args, today: Date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields["category"].choices = [("", "Everything"), *[(c.slug, c.name) for c in category_list()]]
        self.fields["date"].widget.attrs["min"] = today.isoformat()

    def clean(self):
        data = super().clean()
        low, high = data.get("price_min"), data.get("price_max")
        if low is not None and high is not None and high < low:
            self.add_error("price_max", "The highest price must not be below the lowest.")
        return data

    def filters(self) -> SearchFilters:
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        start = max(data.get("date") or self.today, self.today)
        days = data.get("days") or 7
        provider: Resource | None = data.get("provider")
        return SearchFilters(
            date_from=start,
            date_to=start + timedelta(days=days - 1),
            location_id=data["location"].pk if data.get("location") else None,
            category_slug=data.get("category") or None,
            resource_id=provider.pk if provider else None,
            kind=data.get("kind") or None,
            time_of_day=data.get("time") or None,
            price_min=data.get("price_min"),
            price_max=data.get("price_max"),
            only_available=bool(data.get("available")),
            text=(data.get("q") or "").strip(),
        )
