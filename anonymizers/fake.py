"""`fake`: a realistic Faker value of the named provider, the same for the same input and key everywhere.

Faker is slow per call, so each (provider, locale, key) builds a pool of values once, from a seed derived
from the key; a value's HMAC picks its entry. The same person therefore gets the same fake name in
every table and run (for one Faker version), and nobody can map a fake back without the key.
"""

from __future__ import annotations

import difflib
import hmac
from functools import lru_cache

import pandas as pd
from faker import Faker
from faker.config import AVAILABLE_LOCALES
from pydantic import field_validator

from anonymizers.base import Operator, OperatorError, Params, as_text, map_values

POOL_SIZE = 10_000
COMMON_PROVIDERS = ("name", "first_name", "last_name", "email", "phone_number", "street_address", "city",
                    "postcode", "company", "user_name")
# Generator methods that are not value providers.
_NOT_PROVIDERS = {"seed", "seed_instance", "seed_locale", "format", "parse", "provider", "get_providers",
                  "add_provider", "set_formatter", "get_formatter", "set_arguments", "get_arguments",
                  "del_arguments", "random", "binary", "tar", "zip", "image", "json", "json_bytes", "csv",
                  "tsv", "psv", "dsv", "xml", "fixed_width", "profile", "simple_profile", "pystruct"}


@lru_cache(maxsize=8)
def _faker(locale: str) -> Faker:
    return Faker(locale)


def providers(locale: str = "en_US") -> list[str]:
    gen = _faker(locale)
    return sorted(n for n in dir(gen) if not n.startswith("_") and n not in _NOT_PROVIDERS
                  and callable(getattr(gen, n, None)))


class FakeParams(Params):
    provider: str
    locale: str = "en_US"

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in AVAILABLE_LOCALES:
            close = difflib.get_close_matches(value, AVAILABLE_LOCALES, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ValueError(f"unknown locale; {hint}valid locales include en_US, de_DE, fr_FR, en_GB")
        return value


@lru_cache(maxsize=32)
def _pool(provider: str, locale: str, seed: int) -> tuple[str, ...]:
    faker = Faker(locale)
    faker.seed_instance(seed)
    method = getattr(faker, provider)
    return tuple(method() for _ in range(POOL_SIZE))


class Fake(Operator):
    name = "fake"
    Params = FakeParams
    shorthand = "provider"
    kinds = frozenset({"text"})
    needs_key = True

    @classmethod
    def validate(cls, raw=None) -> FakeParams:
        params = super().validate(raw)
        valid = providers(params.locale)
        if params.provider not in valid:
            close = difflib.get_close_matches(params.provider, valid, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise OperatorError(f"fake: unknown provider '{params.provider}'; {hint}valid providers include "
                                f"{', '.join(COMMON_PROVIDERS)}")
        sample = getattr(_faker(params.locale), params.provider)
        try:
            value = sample()
        except TypeError:
            raise OperatorError(f"fake: provider '{params.provider}' needs arguments; valid providers include "
                                f"{', '.join(COMMON_PROVIDERS)}") from None
        if not isinstance(value, str):
            raise OperatorError(f"fake: provider '{params.provider}' does not produce text; valid providers "
                                f"include {', '.join(COMMON_PROVIDERS)}")
        return params

    def _setup(self) -> None:
        self._key = self.ctx.subkey(self.name, f"fake/{self.params.provider}/{self.params.locale}")
        self._seed = int.from_bytes(hmac.digest(self._key, b"pool", "sha256")[:8], "big")

    @property
    def pool(self) -> tuple[str, ...]:
        """The fake values, built on first use (about a second) and shared by operators with the same key."""
        return _pool(self.params.provider, self.params.locale, self._seed)

    def _fakes(self, values: list[str]) -> list[str]:
        pool, key, digest = self.pool, self._key, hmac.digest
        out = []
        for v in values:
            i = int.from_bytes(digest(key, v.encode("utf-8", "surrogatepass"), "sha256")[:8], "big") % POOL_SIZE
            fake = pool[i]
            while fake == v:  # never hand back the original, even by coincidence
                i = (i + 1) % POOL_SIZE
                fake = pool[i]
            out.append(fake)
        return out

    def text_length(self) -> int:
        """The longest value in this key's pool: a VARCHAR narrower than that could fail a chunk mid-run."""
        return max(map(len, self.pool))

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        return map_values(as_text(series), self._fakes)
