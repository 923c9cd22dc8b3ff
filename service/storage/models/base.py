"""Declarative base of every table, with a naming convention so constraint names are stable;
:func:`row_view` copies a row into a read model detached from its session (:class:`RowResult`
gives such a read model its ``of(row)``)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "CreatedAtMixin",
    "RowResult",
    "TimestampedMixin",
    "row_view",
]

T = TypeVar("T")
R = TypeVar("R")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every banditroute table (``Base.metadata`` is Alembic's target)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CreatedAtMixin:
    """Adds ``created_at`` set by the database."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TimestampedMixin(CreatedAtMixin):
    """Adds ``created_at`` and ``updated_at`` (set by the database on insert)."""

    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def row_view(cls: type[T], row: Any, **computed: Any) -> T:
    """The dataclass ``cls`` with every field not ``computed`` read from the row's attribute of
    that name.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class View:
    ...     name: str
    ...     policy: str
    >>> class Row:
    ...     name, policy_name = "r", "lin"
    >>> row_view(View, Row(), policy=Row.policy_name)
    View(name='r', policy='lin')
    """
    names = (f.name for f in fields(cls) if f.name not in computed)  # type: ignore[arg-type]
    return cls(**{name: getattr(row, name) for name in names}, **computed)


class RowResult(Generic[R]):
    """A read-model dataclass built from an ORM row ``R`` whose attributes have its fields'
    names (:func:`row_view`); a read model with computed fields overrides :meth:`of`."""

    @classmethod
    def of(cls, row: R) -> Self:
        return row_view(cls, row)
