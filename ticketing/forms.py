"""Forms of ticketing: input parsing and friendly messages; the rules stay in services."""

import uuid
from decimal import Decimal

from django import forms


class TransferForm(forms.Form):
    to_name = forms.CharField(
        label="Their name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    to_email = forms.EmailField(
        label="Their email", help_text="The new ticket is sent here; the current code stops working."
    )


class ResaleForm(forms.Form):
    def __init__(self, *args, cap: Decimal, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["price"] = forms.DecimalField(
            label=f"Price ({currency})",
            min_value=Decimal("0.01"),
            max_value=cap,
            max_digits=10,
            decimal_places=2,
            initial=cap,
            help_text=f"At most {cap} {currency}, the organiser's cap. You get this back when it sells.",
        )


class ResaleBuyForm(forms.Form):
    name = forms.CharField(
        label="Your name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    email = forms.EmailField(
        label="Email",
        help_text="Your ticket and booking link go here.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=80)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = uuid.uuid4().hex


class DoorDeviceForm(forms.Form):
    name = forms.CharField(
        label="Name this phone",
        max_length=80,
        initial="Main door",
        help_text="Shown next to every scan it makes.",
    )
