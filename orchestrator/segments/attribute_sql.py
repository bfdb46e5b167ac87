"""A customer's JSON attributes in SQL: one expression, rendered per dialect (SQLite, PostgreSQL).

Filters compare ``customer.attributes[key]`` only when its JSON type matches the value's, so
``attr.size: 3`` never matches the text ``"3"``; the key always travels as a bound parameter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, String, and_, case, cast, false, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnClause
from sqlalchemy.types import TypeEngine

from orchestrator.models import Customer, table_of

_CUSTOMER = table_of(Customer)


class _AttributeColumn(ColumnClause):
    """Renders per dialect (below); reads customer.attributes, so a query selects FROM customer."""

    inherit_cache = False

    @property
    def _from_objects(self) -> list[Any]:
        return [_CUSTOMER]


class AttributeValue(_AttributeColumn):
    """``customer.attributes[key]`` if its JSON type matches ``kind``, else NULL.

    kind: text, number, bool, or ``kind`` (the JSON type's name, NULL for missing or null).
    The key travels as a bound parameter.
    """

    inherit_cache = False

    def __init__(self, key: str, kind: str) -> None:
        types: dict[str, TypeEngine[Any]] = {
            "text": String(), "number": Float(), "bool": Boolean(), "kind": String(),
        }  # fmt: skip
        super().__init__(f"attributes.{key}", type_=types[kind])
        self.key_name = key
        self.kind = kind


class AttributeArrayContains(_AttributeColumn):
    """True when ``customer.attributes[key]`` is a JSON array holding the text ``value``."""

    inherit_cache = False

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"attributes.{key}", type_=Boolean())
        self.key_name = key
        self.value = value


@compiles(AttributeValue, "sqlite")
def _attribute_value_sqlite(element: AttributeValue, compiler: Any, **kw: Any) -> str:
    column = _CUSTOMER.c.attributes
    path = literal(f'$."{element.key_name}"', String())
    json_type = func.json_type(column, path)
    value = func.json_extract(column, path)
    expr = {
        "text": case((json_type == "text", value)),
        "number": case((json_type.in_(["integer", "real"]), value)),
        "bool": case((json_type == "true", true()), (json_type == "false", false())),
        "kind": case(
            (json_type == "text", "string"),
            (json_type.in_(["integer", "real"]), "number"),
            (json_type.in_(["true", "false"]), "boolean"),
            (json_type.in_(["array", "object"]), json_type),
        ),
    }[element.kind]
    return compiler.process(expr, **kw)


@compiles(AttributeValue, "postgresql")
def _attribute_value_postgresql(element: AttributeValue, compiler: Any, **kw: Any) -> str:
    column = _CUSTOMER.c.attributes
    key = literal(element.key_name, String())
    json_type = func.json_typeof(column.op("->")(key))
    text = column.op("->>")(key)
    expr = {
        "text": case((json_type == "string", text)),
        "number": case((json_type == "number", cast(text, Float()))),
        "bool": case((json_type == "boolean", cast(text, Boolean()))),
        "kind": case((json_type != "null", json_type)),
    }[element.kind]
    return compiler.process(expr, **kw)


@compiles(AttributeArrayContains, "sqlite")
def _array_contains_sqlite(element: AttributeArrayContains, compiler: Any, **kw: Any) -> str:
    path = literal(f'$."{element.key_name}"', String())
    items = func.json_each(_CUSTOMER.c.attributes, path).table_valued("value", "type")
    json_type = func.json_type(_CUSTOMER.c.attributes, path)
    found = select(literal(1)).select_from(items).where(items.c.value == element.value).exists()
    return compiler.process(and_(json_type == "array", found), **kw)


@compiles(AttributeArrayContains, "postgresql")
def _array_contains_postgresql(element: AttributeArrayContains, compiler: Any, **kw: Any) -> str:
    node = _CUSTOMER.c.attributes.op("->")(literal(element.key_name, String()))
    wanted = func.jsonb_build_array(literal(element.value, String()))
    expr = case((func.json_typeof(node) == "array", cast(node, JSONB).op("@>")(wanted)), else_=false())
    return compiler.process(expr, **kw)
