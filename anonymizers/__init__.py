"""Lethe's anonymization operators: one module per operator, a registry, and the contract they share."""

from anonymizers.base import KINDS, Operator, OperatorContext, OperatorError
from anonymizers.pseudonymize import TOKEN_REGEX, is_token
from anonymizers.registry import OPERATOR_NAMES, OPERATORS, build_operator, operator_class, parse_operator_spec

__all__ = [
    "KINDS",
    "OPERATORS",
    "OPERATOR_NAMES",
    "TOKEN_REGEX",
    "Operator",
    "OperatorContext",
    "OperatorError",
    "build_operator",
    "is_token",
    "operator_class",
    "parse_operator_spec",
]
