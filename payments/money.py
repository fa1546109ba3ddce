"""Amounts as Stripe counts them: integers in the currency's smallest unit."""

from decimal import ROUND_HALF_UP, Decimal

# Stripe's zero-decimal currencies: an amount of 500 JPY is sent as 500, not 50000.
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)


def _exponent(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL else 2


def to_minor(amount: Decimal, currency: str) -> int:
    scaled = (Decimal(amount) * (10 ** _exponent(currency))).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    exponent = _exponent(currency)
    return (Decimal(amount) / (10**exponent)).quantize(Decimal(1).scaleb(-exponent))


def money(amount: int, currency: str) -> str:
    """'45.00 GBP' for display from minor units."""
    return f"{from_minor(amount, currency)} {currency.upper()}"
