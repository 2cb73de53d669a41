"""Writing model instances in hand-written SQL: the one-statement writes of a turn
(``orchestration.turns.store``) and of credit holds insert rows this way.

Columns come from the models' own fields, so a column added to a model is written here without a
second list to keep in step. Several rows of a model travel as *one* JSON parameter expanded by
``jsonb_to_recordset``: the statement's text is then the same whatever the number of rows, so
PostgreSQL prepares it once per connection and never plans it again.
"""

import json
from functools import cache

from django.db import connections, models
from django.db.models.fields import AutoFieldMixin


def _connection():
    # The default connection itself, not the thread-local proxy: these helpers touch it per field.
    return connections["default"]


def table(model: type[models.Model]) -> str:
    return _connection().ops.quote_name(model._meta.db_table)


@cache
def row_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The columns an insert writes: every concrete field but a database-generated primary key."""
    return tuple(f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin))


@cache
def _columns(model: type[models.Model]) -> tuple[str, str]:
    """``(column list, column definitions)`` of the model's inserted fields, for ``INSERT INTO t (…)``
    and for ``jsonb_to_recordset(…) AS r(…)``."""
    connection = _connection()
    fields = row_fields(model)
    quoted = [connection.ops.quote_name(f.column) for f in fields]
    definitions = ", ".join(f"{q} {f.db_type(connection)}" for q, f in zip(quoted, fields, strict=True))
    return ", ".join(quoted), definitions


def row_select(obj: models.Model, *, computed: dict[str, str] | None = None) -> tuple[str, str, list]:
    """``(columns, select list, params)`` to ``INSERT … SELECT`` one instance; ``computed`` maps a
    field's attname to an SQL expression written in place of its value (e.g. a CTE's column)."""
    connection = _connection()
    computed = computed or {}
    expressions, params = [], []
    for field in row_fields(type(obj)):
        if field.attname in computed:
            expressions.append(computed[field.attname])
        else:
            expressions.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    return _columns(type(obj))[0], ", ".join(expressions), params


def rows_json(
    model: type[models.Model], objs: list[models.Model], *, extra: dict[str, list] | None = None
) -> str:
    """The instances as one JSON array of objects keyed by column, for ``rows_recordset``; ``extra``
    adds a value per instance under another name (name → one value per instance)."""
    fields = row_fields(model)
    rows = [{f.column: f.pre_save(obj, True) for f in fields} for obj in objs]
    for name, values in (extra or {}).items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    # UUIDs, Decimals (as exact strings) and datetimes (ISO, with their offset) become strings that
    # PostgreSQL reads back into the column's type; JSON fields stay nested JSON.
    return json.dumps(rows, default=str)


def rows_recordset(
    model: type[models.Model],
    *,
    alias: str = "r",
    computed: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> tuple[str, str]:
    """``(columns, "SELECT … FROM jsonb_to_recordset(%s::jsonb) AS alias(…)")`` to insert the rows of
    one JSON parameter (``rows_json``) — the same text for one row or fifty. ``computed`` maps an
    attname to an SQL expression written in place of the column's value (it may use ``alias.*``
    columns, or other CTEs joined by the caller); ``extra`` declares the extra values' SQL types."""
    computed = computed or {}
    columns, definitions = _columns(model)
    definitions += "".join(f", {name} {sql_type}" for name, sql_type in (extra or {}).items())
    quote = _connection().ops.quote_name
    select = ", ".join(computed.get(f.attname) or f"{alias}.{quote(f.column)}" for f in row_fields(model))
    return columns, f"SELECT {select} FROM jsonb_to_recordset(%s::jsonb) AS {alias}({definitions})"
