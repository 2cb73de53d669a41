"""Writing model instances in hand-written SQL, through each field's own database preparation: the
one-statement writes of the turn (``orchestration.services.turn_sql``) and of credit holds insert rows
this way, so a column added to a model is written without a second list of columns to keep in step."""

from django.db import connection, models
from django.db.models.fields import AutoFieldMixin


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def row_fields(model: type[models.Model]) -> list[models.Field]:
    """The columns an insert writes: every concrete field but a database-generated primary key."""
    return [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]


def row_select(obj: models.Model, *, computed: dict[str, str] | None = None) -> tuple[str, str, list]:
    """``(columns, select list, params)`` to ``INSERT … SELECT`` one instance; ``computed`` maps a
    field's attname to an SQL expression written in place of its value (e.g. a CTE's column)."""
    computed = computed or {}
    fields = row_fields(type(obj))
    expressions, params = [], []
    for field in fields:
        if field.attname in computed:
            expressions.append(computed[field.attname])
        else:
            expressions.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return columns, ", ".join(expressions), params


def rows_values(objs: list[models.Model]) -> tuple[str, str, list]:
    """``(columns, VALUES rows, params)`` to ``INSERT … VALUES`` instances of one model."""
    fields = row_fields(type(objs[0]))
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return columns, ", ".join([placeholders] * len(objs)), params


def rows_select(
    objs: list[models.Model],
    *,
    alias: str,
    computed: dict[str, str] | None = None,
    extra: dict[str, tuple[str, list]] | None = None,
) -> tuple[str, str, list]:
    """``(columns, "SELECT … FROM (VALUES …) AS alias(…)", params)`` to ``INSERT … SELECT`` instances
    of one model, so the insert can be made conditional (``WHERE``) or joined to other CTEs.
    ``computed`` maps an attname to an SQL expression written in its place; ``extra`` adds columns to
    the VALUES (name → (SQL type, one value per instance)) for those expressions to use. Every value
    is cast to its column's type: a VALUES list has no target columns to infer types from."""
    computed = computed or {}
    extra = extra or {}
    fields = row_fields(type(objs[0]))
    valued = [f for f in fields if f.attname not in computed]
    types = [f.db_type(connection) for f in valued] + [sql_type for sql_type, _ in extra.values()]
    names = [f"v{i}" for i in range(len(valued))] + list(extra)
    row = "(" + ", ".join(f"%s::{t}" for t in types) + ")"
    params: list = []
    for index, obj in enumerate(objs):
        params += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in valued]
        params += [values[index] for _, values in extra.values()]
    by_field = dict(zip([f.attname for f in valued], names[: len(valued)], strict=True))
    select = ", ".join(computed.get(f.attname) or f"{alias}.{by_field[f.attname]}" for f in fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = ", ".join([row] * len(objs))
    return columns, f"SELECT {select} FROM (VALUES {values}) AS {alias}({', '.join(names)})", params
