"""Model instances from plain SQL rows, for the few hot reads where the ORM spends more compiling a
query than PostgreSQL spends running it (a booking page's session with its offering, on every
booking POST of a sale). Columns come from the models' own field lists and values go through the
same converters the ORM applies, so a field added later is read like anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def select_list(model: type[models.Model], alias: str) -> str:
    """The model's columns, qualified by *alias*, in field order (what `instance_from` expects)."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def column_count(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)


def instance_from(model: type[models.Model], values: Sequence) -> models.Model:
    """A model instance from the values of `select_list(model, …)`, as if the ORM had loaded it."""
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)
