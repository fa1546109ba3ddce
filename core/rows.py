"""Model instances from plain SQL rows, for the few hot reads where the ORM spends more compiling a
query than PostgreSQL spends running it (a booking page's session with its offering, a session's
counters, on every booking POST of a sale). Columns come from the models' own field lists and values
go through the same converters the ORM applies, so a field added later is read like anywhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import connection, models


def select_list(model: type[models.Model], alias: str) -> str:
    """The model's columns, qualified by *alias*, in field order (what `instances_from` expects)."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


@functools.cache
def _loader(model: type[models.Model]) -> tuple[list[str], list[tuple[int, list, object]]]:
    """The model's attribute names, and the converters of the fields that have any (by position):
    worked out once per model, not per row."""
    fields = model._meta.concrete_fields
    converters = []
    for i, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            converters.append((i, found, column))
    return [f.attname for f in fields], converters


def instances_from(row: Sequence, *chosen: type[models.Model]) -> list[models.Model | None]:
    """One instance per model from *row*, which holds their `select_list`s in that order, as if the
    ORM had loaded them; None for a model whose key is NULL (an outer join that found nothing)."""
    found, start = [], 0
    for model in chosen:
        names, converters = _loader(model)
        values = list(row[start : start + len(names)])
        start += len(names)
        for i, convert_all, column in converters:
            for convert in convert_all:
                values[i] = convert(values[i], column, connection)
        pk = values[names.index(model._meta.pk.attname)]
        found.append(None if pk is None else model.from_db(connection.alias, names, values))
    return found
