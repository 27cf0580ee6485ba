"""`generalize_ip`: an IPv4/IPv6 address becomes its network prefix, e.g. ``203.0.113.0/24``.

Valid means: a strict dotted quad, or an RFC 4291 IPv6 text form (optionally ending in a dotted quad).
Everything else, including addresses with a prefix length or zone, becomes NULL. The same gate is used
in SQL, so PostgreSQL only ever casts text that it is guaranteed to parse.
"""

from __future__ import annotations

import ipaddress
import re

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects.postgresql import CIDR, INET
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, Params, as_text, dialect_name, map_values

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H}:{_H}|{_V4})"
_V6 = "|".join([
    rf"(?:{_H}:){{6}}{_LS32}",
    rf"::(?:{_H}:){{5}}{_LS32}",
    rf"(?:{_H})?::(?:{_H}:){{4}}{_LS32}",
    rf"(?:(?:{_H}:){{0,1}}{_H})?::(?:{_H}:){{3}}{_LS32}",
    rf"(?:(?:{_H}:){{0,2}}{_H})?::(?:{_H}:){{2}}{_LS32}",
    rf"(?:(?:{_H}:){{0,3}}{_H})?::{_H}:{_LS32}",
    rf"(?:(?:{_H}:){{0,4}}{_H})?::{_LS32}",
    rf"(?:(?:{_H}:){{0,5}}{_H})?::{_H}",
    rf"(?:(?:{_H}:){{0,6}}{_H})?::",
])
# Above /80 PostgreSQL prints IPv4-mapped networks in dotted form and Python does not.
_PG_MAX_V6_PREFIX = 80


class GeneralizeIpParams(Params):
    ipv4_prefix: int = Field(default=24, ge=0, le=32)
    ipv6_prefix: int = Field(default=48, ge=0, le=128)


class GeneralizeIp(Operator):
    name = "generalize_ip"
    Params = GeneralizeIpParams
    kinds = frozenset({"text", "ip"})  # ip: PostgreSQL's inet and cidr
    idempotent = True

    def _setup(self) -> None:
        p4, p6 = self.params.ipv4_prefix, self.params.ipv6_prefix
        # An earlier output ("203.0.113.0/24") is generalized again, so applying twice changes nothing.
        self._v4 = rf"^{_V4}(?:/{p4})?$"
        self._v6 = rf"^(?:{_V6})(?:/{p6})?$"
        self._is_v4 = re.compile(self._v4)
        self._is_v6 = re.compile(self._v6)

    def _networks(self, values: list[str]) -> list[str | None]:
        p4, p6 = self.params.ipv4_prefix, self.params.ipv6_prefix
        mask4 = ((1 << 32) - 1) ^ ((1 << (32 - p4)) - 1)
        is_v4, is_v6 = self._is_v4.fullmatch, self._is_v6.fullmatch
        out: list[str | None] = []
        for v in values:
            if is_v4(v):
                a, b, c, d = v.partition("/")[0].split(".")
                n = ((int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)) & mask4
                out.append(f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}/{p4}")
            elif is_v6(v):
                out.append(str(ipaddress.IPv6Network((v.partition("/")[0], p6), strict=False)))
            else:
                out.append(None)
        return out

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        first = series.dropna().head(1)
        if len(first) and not isinstance(first.iloc[0], str):  # inet/cidr arrive as ipaddress objects
            series = series.map(_address_text, na_action="ignore")
        return map_values(as_text(series), self._networks)

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        if dialect_name(dialect) != "postgresql" or self.params.ipv6_prefix > _PG_MAX_V6_PREFIX:
            return None
        if isinstance(column.type, (INET, CIDR)):  # already an address: no text to validate
            prefix = sa.case((sa.func.family(column) == 4, self.params.ipv4_prefix), else_=self.params.ipv6_prefix)
            return sa.type_coerce(sa.cast(sa.func.network(sa.func.set_masklen(column, prefix)), column.type),
                                  column.type)

        def network(prefix: int) -> ColumnElement:
            inet = sa.cast(sa.func.split_part(column, "/", 1), INET)
            return sa.cast(sa.func.network(sa.func.set_masklen(inet, prefix)), sa.Text)

        # CASE evaluates the cast only for text that passed the gate, so bad input is NULL, never an error.
        expr = sa.case(
            (column.op("~")(sa.literal(self._v4, sa.Text)), network(self.params.ipv4_prefix)),
            (column.op("~")(sa.literal(self._v6, sa.Text)), network(self.params.ipv6_prefix)),
            else_=sa.null(),
        )
        return sa.type_coerce(expr, sa.String)

    def writes_null(self, kind: str, subject_nullable: bool = True) -> str | None:
        return None if kind == "ip" else "writes NULL for an invalid address"

    def text_length(self) -> int:
        """The longest IPv4 network text: "255.255.255.0/24" (16) no longer fits the VARCHAR(15) sized for
        IPv4 addresses. IPv6 is not bounded here: a column sized for IPv6 addresses (39 or more) holds any
        network up to /96, and one that is not holds few IPv6 addresses to begin with.
        """
        p4 = self.params.ipv4_prefix
        octets = -(-p4 // 8)  # octets the prefix reaches: up to "255" each; the others print as "0"
        return 3 * octets + (4 - octets) + 3 + len(f"/{p4}")

    def form_regex(self, kind: str = "text") -> str:
        return rf"^(?:{_V4}/{self.params.ipv4_prefix}|(?:{_V6})/{self.params.ipv6_prefix})$"


def _address_text(value: object) -> object:
    """An inet (address or interface) or cidr value as its address, without a mask; text unchanged."""
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value.ip)
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value.network_address)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    return value
