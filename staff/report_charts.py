"""Bar charts for the Reports page, drawn on the server as SVG-ready plain data.

`bar_chart` picks a "nice" axis step (1, 2 or 5 times a power of ten) so gridlines fall on round
numbers, and returns bars and ticks as percentages; the template draws them, no JavaScript involved.
`period_label` names a day or week the same way on the page, in CSV and under the charts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str  # "<period>: <value> <series name>", shown on hover and read by screen readers


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class BarChart:
    """An SVG bar chart laid out in Python; the template only draws it. Coordinates in SVG units."""

    empty: bool  # nothing but zeros: the page says so instead of drawing a flat line
    ident: str
    title: str
    description: str
    series: list[str]
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int
    height: int
    left: int
    bottom: float  # y of the x axis


WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 220, 48, 8, 10, 28


def _nice_step(value: float) -> float:
    """A readable gridline step (1, 2, 2.5 or 5 × 10ⁿ; whole below 10) so 4 steps reach *value*."""
    quarter = max(value / 4, 1e-9)
    power = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= quarter and (step * power >= 10 or float(step * power).is_integer()):
            return step * power
    return 10 * power  # pragma: no cover


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def bar_chart(
    *,
    ident: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | int | Decimal | None]],
    unit: str = "",
) -> BarChart:
    """Lay out grouped bars: one group per label, one bar per series, on a shared linear y axis."""
    names = list(series)
    values = [[float(v or 0) for v in series[name]] for name in names]
    highest = max((v for vs in values for v in vs), default=0)
    top = 4 * _nice_step(max(highest, 1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    axis_y = TOP + plot_h
    band = plot_w / max(len(labels), 1)
    gap = min(band * 0.2, 8)
    bar_w = (band - gap) / max(len(names), 1)
    bars = []
    for i, label in enumerate(labels):
        for j, name in enumerate(names):
            value = values[j][i]
            height = plot_h * value / top
            shown = _number(value)
            bars.append(
                Bar(
                    x=round(LEFT + i * band + gap / 2 + j * bar_w, 2),
                    y=round(axis_y - height, 2),
                    width=round(max(bar_w - 1, 1), 2),
                    height=round(height, 2),
                    series=j,
                    title=f"{label}: {shown}{unit} {name.lower()}",
                )
            )
    every = math.ceil(len(labels) / 12) or 1  # at most ~12 labels fit under the axis
    x_ticks = [
        Tick(position=round(LEFT + i * band + band / 2, 2), label=label)
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    y_ticks = [
        Tick(position=round(axis_y - plot_h * k / 4, 2), label=f"{_number(top * k / 4)}{unit}")
        for k in range(5)
    ]
    return BarChart(
        empty=highest == 0,
        ident=ident,
        title=title,
        description=description,
        series=names,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        bottom=axis_y,
    )


def period_label(period: date | None, group: str) -> str:
    if period is None:
        return "Total"
    if group == "week":
        return f"Week of {period:%a %-d %b %Y}"
    return f"{period:%a %-d %b %Y}"


def period_short_label(period: date, group: str) -> str:
    return f"w/c {period:%-d %b}" if group == "week" else f"{period:%-d %b}"
