"""The operator registry: maps policy names to operator classes and turns a policy spec into an operator.

Spec forms: a bare name (``redact``), ``{name: params}``, ``{name: true}`` for an operator without
parameters, and ``{name: scalar}`` for an operator's one main parameter (``{generalize_date: month}``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from anonymizers.base import Operator, OperatorContext, OperatorError, Params
from anonymizers.bucket import Bucket
from anonymizers.email_domain import EmailDomain
from anonymizers.fake import Fake
from anonymizers.generalize_date import GeneralizeDate
from anonymizers.generalize_ip import GeneralizeIp
from anonymizers.keep import Keep
from anonymizers.mask import Mask
from anonymizers.pseudonymize import Pseudonymize
from anonymizers.redact import Redact
from anonymizers.shift_date import ShiftDate
from anonymizers.truncate import Truncate

OPERATORS: dict[str, type[Operator]] = {cls.name: cls for cls in (
    Keep, Redact, Pseudonymize, Mask, Fake, GeneralizeIp, GeneralizeDate, Bucket, Truncate, ShiftDate, EmailDomain,
)}
OPERATOR_NAMES: tuple[str, ...] = tuple(sorted(OPERATORS))


def operator_class(name: str) -> type[Operator]:
    """The class registered under ``name``, or an OperatorError listing the valid names."""
    try:
        return OPERATORS[name]
    except (KeyError, TypeError):
        shown = name if isinstance(name, str) else type(name).__name__
        close = difflib.get_close_matches(shown, OPERATOR_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OperatorError(f"unknown operator '{shown}'{hint}; valid operators: {', '.join(OPERATOR_NAMES)}"
                            ) from None


def _raw_params(cls: type[Operator], value: Any) -> Mapping[str, Any] | None:
    if value is True or value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    if cls.shorthand is not None and isinstance(value, str | int | float) and not isinstance(value, bool):
        return {cls.shorthand: value}
    fields = ", ".join(cls.Params.model_fields) or "none"
    short = f", a bare {cls.shorthand}" if cls.shorthand else ""
    raise OperatorError(f"{cls.name}: parameters must be a mapping{short} or true; valid parameters: {fields}")


def parse_operator_spec(spec: Any) -> tuple[str, Params]:
    """The operator name and its validated parameters, or an OperatorError saying what is wrong."""
    if isinstance(spec, str):
        cls = operator_class(spec)
        return cls.name, cls.validate({})
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((name, value),) = spec.items()
        cls = operator_class(name)
        return cls.name, cls.validate(_raw_params(cls, value))
    raise OperatorError(
        "an operator is a name or a one-key mapping {name: params}; "
        f"valid operators: {', '.join(OPERATOR_NAMES)}"
    )


def build_operator(spec: Any, ctx: OperatorContext | None = None) -> Operator:
    """A ready operator from a policy spec; secrets come from ``ctx``, validated here, not mid-batch."""
    name, params = parse_operator_spec(spec)
    return OPERATORS[name](params, ctx or OperatorContext())
