"""Policy-as-code: the SPEC's YAML file read into typed models, with every mistake reported by path."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anonymizers import OperatorError, parse_operator_spec
from pipelines.durations import Duration
from pipelines.errors import PolicyError
from pipelines.policy_yaml import read_yaml
from pipelines.secrets import SecretError, check_reference

ACTION_STRENGTH = {"keep": 0, "anonymize": 1, "erase": 2}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    return Duration.parse(value)


class Retain(_Model):
    period: Duration = Field(alias="for")
    from_column: str = Field(alias="from", min_length=1)

    _parse = field_validator("period", mode="before")(lambda cls, v: _duration(v))


class TableRule(_Model):
    key: str = Field(min_length=1)
    subject: str | None = None
    retain: Retain | None = None
    when_expired: Literal["erase", "anonymize"] | None = None
    when_subject_deleted: Literal["erase", "anonymize", "keep"] | None = None
    columns: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _subject_action_defaults_to_expiry(cls, data: Any) -> Any:
        # SPEC's own example (marketing_profiles) has a subject and `when_expired` but no
        # `when_subject_deleted`: the expiry action then applies to deleted subjects too.
        if (isinstance(data, dict) and data.get("subject") is not None and data.get("retain") is not None
                and "when_subject_deleted" not in data and data.get("when_expired") in ("erase", "anonymize")):
            data = {**data, "when_subject_deleted": data["when_expired"]}
        return data

    @model_validator(mode="after")
    def _required_actions(self) -> TableRule:
        if self.subject is not None and self.when_subject_deleted is None:
            raise ValueError("a table with `subject` needs `when_subject_deleted` (erase, anonymize or keep)")
        if self.retain is not None and self.when_expired is None:
            raise ValueError("a table with `retain` needs `when_expired` (erase or anonymize)")
        if self.when_expired is not None and self.retain is None:
            raise ValueError("`when_expired` needs `retain: {for: PERIOD, from: COLUMN}`")
        if self.when_subject_deleted is not None and self.subject is None:
            raise ValueError("`when_subject_deleted` needs `subject: COLUMN`")
        return self

    @property
    def anonymizes(self) -> bool:
        return "anonymize" in (self.when_expired, self.when_subject_deleted)

    @property
    def erases(self) -> bool:
        return "erase" in (self.when_expired, self.when_subject_deleted)


class Subjects(_Model):
    table: str = Field(min_length=1)
    id: str = Field(min_length=1)
    deleted_at: str = Field(min_length=1)
    erase_after: Duration = Duration(30, "d")

    _parse = field_validator("erase_after", mode="before")(lambda cls, v: _duration(v))


class LegalHolds(_Model):
    table: str = Field(min_length=1)


class Pseudonymization(_Model):
    key: str
    key_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")

    @field_validator("key", mode="before")
    @classmethod
    def _reference(cls, value: object) -> str:
        try:
            return check_reference(value)
        except SecretError as exc:
            raise ValueError(str(exc)) from None


class Coarsen(_Model):
    """Fallback dimension values for would-be-small groups (see docs/aggregates.md)."""

    replace_with: dict[str, Any] = Field(default_factory=dict)


class Aggregate(_Model):
    from_table: str = Field(alias="from", min_length=1)
    dimensions: dict[str, dict[str, Any]] = Field(min_length=1)
    min_group_size: int = Field(default=1, ge=1, le=1_000_000)
    coarsen: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dimensions")
    @classmethod
    def _dimension_shape(cls, dims: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, spec in dims.items():
            if "column" not in spec or not isinstance(spec["column"], str):
                raise ValueError(f"dimension {name!r} needs `column: NAME`")
            if len(spec) > 2:
                raise ValueError(f"dimension {name!r} takes `column` plus at most one operator key")
            if name == "row_count":
                raise ValueError("`row_count` is reserved for the count column")
        return dims


class Policy(_Model):
    version: Literal[1]
    store: str | None = None
    vault: str | None = None
    pseudonymization: Pseudonymization
    subjects: Subjects | None = None
    legal_holds: LegalHolds | None = None
    tables: dict[str, TableRule] = Field(min_length=1)
    aggregates: dict[str, Aggregate] = Field(default_factory=dict)

    source: str = Field(default="<policy>", exclude=True)
    sha256: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        problems = []
        for name, agg in self.aggregates.items():
            if agg.from_table not in self.tables:
                problems.append(f"aggregates.{name}.from: {agg.from_table!r} is not a table of this policy; "
                                f"tables are {', '.join(sorted(self.tables))}")
            elif not self._ever_due(agg.from_table):
                problems.append(f"aggregates.{name}.from: no row of {agg.from_table!r} ever falls due (it has no "
                                "`retain`, and no `subject` whose deletion erases or anonymizes it), so nothing would "
                                "ever be folded; valid: a table with `retain`, or with a `subject` and "
                                "when_subject_deleted erase or anonymize")
            if name in self.tables:
                problems.append(f"aggregates.{name}: an aggregate cannot have the name of a policy table")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _ever_due(self, name: str) -> bool:
        rule = self.tables[name]
        by_subject = self.subjects is not None and rule.subject is not None and rule.when_subject_deleted != "keep"
        return rule.retain is not None or by_subject

    def table_order(self) -> list[str]:
        """Tables in processing order: the subjects table last, so other tables still find its ids."""
        last = self.subjects.table if self.subjects else None
        return sorted(self.tables, key=lambda t: (t == last, t))


def _path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("function-after", "function-before"))


def _valid_keys(loc: tuple) -> list[str]:
    """The keys the model allows at `loc`'s parent, for 'unknown key' messages."""
    node: Any = Policy
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {f.alias or n: f for n, f in node.model_fields.items()}
            if part not in fields:
                return []
            node = fields[part].annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return []
        while get_origin(node) in (Union, UnionType):
            node = next((a for a in get_args(node) if a is not type(None)), None)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return sorted(f.alias or n for n, f in node.model_fields.items() if n not in ("source", "sha256"))
    return []


def _messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        path = _path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(err["loc"])
            msg = "unknown key" + (f"; valid keys here: {', '.join(valid)}" if valid else "")
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err['input']!r})"
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append(f"{path}: {msg}" if path else msg)
    return out


def _operator_problems(raw: dict) -> list[str]:
    """Mistakes in operator specs, found without the database, so that a policy with a structural mistake
    has its operator mistakes reported at once too (a valid policy gets them from the schema check, which
    also knows the columns' types).
    """
    specs: list[tuple[str, Any]] = []
    tables, aggs = raw.get("tables"), raw.get("aggregates")
    for name, rule in tables.items() if isinstance(tables, dict) else ():
        columns = rule.get("columns") if isinstance(rule, dict) else None
        if isinstance(columns, dict):
            specs += [(f"tables.{name}.columns.{col}", spec) for col, spec in columns.items()]
    for name, agg in aggs.items() if isinstance(aggs, dict) else ():
        dims = agg.get("dimensions") if isinstance(agg, dict) else None
        for dim, spec in dims.items() if isinstance(dims, dict) else ():
            ops = {k: v for k, v in spec.items() if k != "column"} if isinstance(spec, dict) else {}
            if len(ops) == 1:
                specs.append((f"aggregates.{name}.dimensions.{dim}", ops))
    problems = []
    for path, spec in specs:
        try:
            parse_operator_spec(spec)
        except OperatorError as exc:
            problems.append(f"{path}: {exc}")
    return problems


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy text (no database involved); raises PolicyError listing every problem."""
    try:
        raw = read_yaml(text)
    except ValueError as exc:
        raise PolicyError([str(exc)], source=source) from None
    if not isinstance(raw, dict):
        raise PolicyError(["the policy must be a YAML mapping with version, pseudonymization and tables"],
                          source=source)
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_messages(exc) + _operator_problems(raw), source=source) from None
    return policy.model_copy(update={"source": source,
                                     "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(["no such file"], source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"cannot read the file ({exc.__class__.__name__})"], source=str(path)) from None
    return parse_policy(text, source=str(path))
