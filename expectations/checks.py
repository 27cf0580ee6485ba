"""Check specs: what the engine asks Great Expectations to prove, as plain data.

The engine (pipelines.verify) derives these from a policy and compiles its own SQL predicates into
them; this package turns them into GX suites. Keeping the specs free of engine types is what lets the
import contract point one way (pipelines -> expectations).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NoRows:
    """No row may come back from `query` (a SELECT that projects a constant, never a data column)."""

    name: str
    query: str


@dataclass(frozen=True)
class ColumnRule:
    """One promise about a column of the rows in scope.

    kind: "match" (every non-NULL value matches `regex`), "not_match" (no value matches `regex`),
    "in_set" (every non-NULL value is one of `values`), "null" (every value is NULL) or "between"
    (every non-NULL value is within `low`..`high`).
    """

    name: str
    column: str
    kind: str
    regex: str | None = None
    values: tuple = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ColumnRules:
    """Column promises over one scope: the rows `query` returns (it projects the checked columns only)."""

    scope: str
    query: str
    rules: tuple[ColumnRule, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AggregateRules:
    """An aggregate table: its count column sums to `expected_total`, no group is below `min_group_size`, and
    its dimension columns keep `rules` (no email or IP address).
    """

    table: str
    count_column: str
    expected_total: int
    min_group_size: int
    total_name: str
    min_group_name: str
    query: str | None = None  # the table's rows as SQL, its name quoted; GX's table assets refuse names
    # such as `patient-stats` or `select` (TestConnectionError), which the policy allows
    rules: tuple[ColumnRule, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Outcome:
    """What leaves verification: a name, whether it held, and how many rows (or units) broke it.

    `unexpected_count` is None only when the check could not be evaluated (which is a failure).
    """

    name: str
    success: bool
    unexpected_count: int | None

    def as_dict(self) -> dict:
        return {"name": self.name, "success": bool(self.success), "unexpected_count": self.unexpected_count}
