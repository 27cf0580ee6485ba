"""Secret references (`env:NAME`, `file:PATH`, `airflow:VARIABLE`) resolved at run time, never stored."""

from __future__ import annotations

import os
import re
from pathlib import Path

SCHEMES = ("env", "file", "airflow")
_NAMES = {"env": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}"), "airflow": re.compile(r"[A-Za-z0-9_.-]{1,64}")}
_ANY = re.compile(r".+", re.DOTALL)
_RULES = {"env": "letters, digits and _, not starting with a digit, at most 64",
          "airflow": "letters, digits, _, . and -, at most 64"}
MIN_KEY_BYTES = 32


class SecretError(ValueError):
    """A secret reference that cannot be resolved; the message names the reference, never the value."""


def check_reference(ref: object) -> str:
    if not isinstance(ref, str) or ":" not in ref:
        raise SecretError("must be a secret reference env:NAME, file:PATH or airflow:VARIABLE "
                          "(a literal key is never accepted)")
    scheme, _, target = ref.partition(":")
    if scheme not in SCHEMES or not target.strip():
        # A literal key pasted here may contain a colon: show the text only when it reads like a scheme name
        # ("vault:abc"), never the rest, so an error in a CI or Airflow log does not spread the key.
        shown = f"{scheme}:..." if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else "the value (not shown)"
        raise SecretError(f"{shown} is not a secret reference (unknown scheme or nothing after the colon); "
                          "valid forms: env:NAME, file:PATH, airflow:VARIABLE")
    if not _NAMES.get(scheme, _ANY).fullmatch(target):
        raise SecretError(f"{scheme}:... needs a variable name after the colon ({_RULES[scheme]}); the value is "
                          "not shown in case it is a key")
    return ref


def resolve(ref: str) -> bytes:
    """Return the secret's bytes; refuse missing, empty or short (< 32 bytes) secrets."""
    scheme, _, target = check_reference(ref).partition(":")
    if scheme == "env":
        value = os.environ.get(target)
        if value is None:
            raise SecretError(f"environment variable {target} (from {ref}) is not set")
    elif scheme == "file":
        path = Path(target)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"cannot read key file {target} ({exc.strerror})") from None
    else:
        value = _airflow_variable(target)
    secret = value.strip().encode("utf-8")
    if not secret:
        raise SecretError(f"the key from {ref} is empty")
    if len(secret) < MIN_KEY_BYTES:
        raise SecretError(f"the key from {ref} is {len(secret)} bytes; at least {MIN_KEY_BYTES} are required")
    return secret


def _airflow_variable(name: str) -> str:
    try:
        from airflow.sdk import Variable
    except ImportError:  # pragma: no cover - airflow is a runtime dependency
        raise SecretError(f"airflow:{name} needs Apache Airflow installed") from None
    try:
        value = Variable.get(name, default=None)
    except Exception:
        value = None
    if value is None:
        value = os.environ.get(f"AIRFLOW_VAR_{name.upper()}")
    if value is None:
        raise SecretError(f"Airflow Variable {name} is not set")
    return value
