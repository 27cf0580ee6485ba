"""Tokens already sit in stores: for a fixed key, pseudonymize must keep producing these exact outputs.

The expected values were computed with the operator as it was before the throughput work of issue #3;
any change to them means stored tokens would no longer match new ones.
"""

import base64
import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from anonymizers import OperatorContext, build_operator

KEY = b"lethe pinning test key, 32+ bytes long!"


@pytest.fixture
def pseudonymize():
    return build_operator("pseudonymize", OperatorContext(key=KEY, key_id="pin"))


TEXT = [
    ("alice@example.com", "lt1.pin.kT7rN9xotnPEjtvprOfFauG8Wlyp76R3y1Gukfcy"),    # plain ASCII
    ("", "lt1.pin.AaJXldVeymyXv1T8-_b8U-5K2YHbxcV0ab-OOZd7"),                     # empty string is a value
    ("Ünïcødé ✓ 日本", "lt1.pin.Qy-v7D-5iBuDn3PGxqeBZYN0Kb4jaJH0fOCH-ofs"),        # multi-byte UTF-8
    ("a" * 500, "lt1.pin.KrFqsSdmSWx0MKjNMSJmestBxKOcKFeu7uNwXnie"),              # longer than a hash block
    ("lt1.k2026.short", "lt1.pin.5EmlLx5Q4EqyGWhohBgs-6C5FDTgQ05la3Jg1clQ"),      # token-like, not a token
    ("line\nbreak", "lt1.pin.h9HE72wAD0sc7v7ohhJoo0ixEnThkgdtUnDB0lf7"),          # control character
    (None, None),                                                                # NULL stays NULL
    ("\x00nul", "lt1.pin.T8emQWesrM-P12Dguou0KwClc7qtbntcMhw6ySiQ"),              # NUL byte
    ("😀 emoji", "lt1.pin.cebx2s6nU02LMSxNX7jd7XGuKsP_-lwK4idqRx6E"),             # outside the BMP
    (" ", "lt1.pin.mfyKn7XQqWmPbLa1cKQZQTskGXXhBJT20sONcNlf"),                    # whitespace only
    ("\ud800x", "lt1.pin.U2s113v93FbCA4IvPP9yseAjthPN8RGtzta1KUre"),              # lone surrogate (surrogatepass)
    ("lt1.old.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",                          # a token: left unchanged
     "lt1.old.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
]

INTEGERS = [
    (0, 7580670171269810192),
    (1, 8797825827435233266),
    (-1, 7352875859115934532),                       # negative: HMAC of "-1"
    (-5, 6695694042293469067),
    (42, 3240210297006868771),
    (10**12, 3721678668858364905),
    (2**62, 6084006845874774965),
    (2**63 - 1, 2186598066910779447),                # largest BIGINT
    (-(2**63), 8835727879787085798),                 # smallest BIGINT
    (None, None),                                    # NULL stays NULL
]


def _fingerprint(values) -> str:
    return hashlib.sha256("\n".join("NULL" if pd.isna(v) else str(v) for v in values).encode()).hexdigest()[:32]


def _columns():
    n = 20_000
    return {
        # all distinct: the no-deduplication path
        "distinct text": pd.Series([f"user{i}@mail{i % 97}.example.com" for i in range(n)], dtype="str"),
        # few distinct values with NULLs: the deduplication path
        "repeated text": pd.Series([None if i % 101 == 0 else f"ü{i % 500}" for i in range(n)], dtype="str"),
        # an object column of strings with NULLs
        "object text": pd.Series([None if i % 7 == 0 else f"v{i}✓" for i in range(n)], dtype=object),
        # numpy int64, negative and large, all distinct
        "distinct int64": pd.Series(np.arange(-n // 2, n // 2, dtype=np.int64) * 982_451_653),
        # nullable Int64 with repeats and NULLs
        "repeated Int64": pd.Series([None if i % 13 == 0 else i % 300 - 150 for i in range(n)], dtype="Int64"),
        # whole floats with NaN, as read from a nullable integer column
        "integral float": pd.Series([float(i) if i % 11 else np.nan for i in range(n)]),
    }


BULK = [
    ("distinct text", "str", "b53f23acc22e8c77af31aa9bde04b2ca"),
    ("repeated text", "str", "40bfdb95cd18a31c794731e08ffdb16a"),
    ("object text", "str", "fb1fec819642eb9bc2408ee2a8ca0671"),
    ("distinct int64", "Int64", "9c03d8c5e3ca0baa9416c2e56762e2b4"),
    ("repeated Int64", "Int64", "17655c2e747aa66fcf8a1b54d21dae01"),
    ("integral float", "Int64", "dc12240bfb01cf2ba01a0bbba9875667"),
]


@pytest.mark.parametrize("dtype", ["str", object])
def test_text_tokens_are_unchanged_for_a_fixed_key(pseudonymize, dtype):
    out = pseudonymize.apply(pd.Series([v for v, _ in TEXT], dtype=dtype))
    assert str(out.dtype) == "str"
    assert [None if pd.isna(t) else t for t in out.tolist()] == [t for _, t in TEXT]


def test_each_text_token_is_the_same_alone_as_in_a_column(pseudonymize):
    for value, token in TEXT:
        out = pseudonymize.apply(pd.Series([value], dtype="str")).tolist()[0]
        assert (None if pd.isna(out) else out) == token


def test_integer_pseudonyms_are_unchanged_for_a_fixed_key(pseudonymize):
    out = pseudonymize.apply(pd.Series([v for v, _ in INTEGERS], dtype="Int64"))
    assert str(out.dtype) == "Int64"
    assert [None if pd.isna(t) else int(t) for t in out.tolist()] == [t for _, t in INTEGERS]


def test_mixed_object_column_is_pseudonymized_as_text(pseudonymize):
    out = pseudonymize.apply(pd.Series([1, "a", None], dtype=object)).tolist()
    assert out[:2] == ["lt1.pin.-hgn-igIv_KPLkDXKBnTQmsa5L1n4b1O-040zc6l",
                       "lt1.pin.CwmoTl3LfanUAF1D40MOR53qdKZLDol8cbxRyn0-"] and pd.isna(out[2])


@pytest.mark.parametrize(("name", "dtype", "fingerprint"), BULK)
def test_whole_columns_are_unchanged_for_a_fixed_key(pseudonymize, name, dtype, fingerprint):
    column = _columns()[name]
    out = pseudonymize.apply(column)
    assert str(out.dtype) == dtype
    assert out.isna().tolist() == column.isna().tolist()
    assert _fingerprint(out.tolist()) == fingerprint


def test_index_and_name_are_kept(pseudonymize):
    out = pseudonymize.apply(pd.Series(["a", "b"], index=[10, 20], name="email"))
    assert out.index.tolist() == [10, 20] and out.name == "email"


def test_tokens_are_the_stdlib_hmac_sha256_of_the_utf8_value(pseudonymize):
    values = [f"user{i}@example.com" for i in range(3000)] + ["", "Ünïcødé ✓ 日本", "a" * 500]
    out = pseudonymize.apply(pd.Series(values, dtype="str")).tolist()
    assert out == ["lt1.pin." + base64.urlsafe_b64encode(hmac.digest(KEY, v.encode(), "sha256")[:30]).decode()
                   for v in values]


def test_integer_pseudonyms_are_the_stdlib_hmac_sha256_of_the_decimal_text(pseudonymize):
    values = list(range(-1500, 1500)) + [2**63 - 1, -(2**63)]
    out = pseudonymize.apply(pd.Series(values, dtype="int64")).tolist()
    assert out == [int.from_bytes(hmac.digest(KEY, str(v).encode(), "sha256")[:8], "big") & (2**63 - 1)
                   for v in values]


def test_existing_tokens_anywhere_in_a_long_column_pass_through(pseudonymize):
    foreign = "lt1.old.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    values: list = [f"v{i}" for i in range(10_000)]
    for i in (0, 4095, 4096, 8191, 9999):  # at chunk edges (4,096 values a chunk) and the ends
        values[i] = foreign
    values[17] = "lt1.pin.not-a-token"  # starts like one, but is pseudonymized
    values[5000] = None
    out = pseudonymize.apply(pd.Series(values, dtype="str")).tolist()
    expected = [None if v is None else v if v == foreign else
                "lt1.pin." + base64.urlsafe_b64encode(hmac.digest(KEY, v.encode(), "sha256")[:30]).decode()
                for v in values]
    assert [None if pd.isna(t) else t for t in out] == expected
