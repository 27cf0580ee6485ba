import pytest

from anonymizers import OPERATOR_NAMES, OperatorContext, OperatorError, build_operator, parse_operator_spec

MINIMUM_SET = {"keep", "redact", "pseudonymize", "mask", "fake", "generalize_ip", "generalize_date", "bucket",
               "truncate", "shift_date", "email_domain"}


def test_registry_offers_the_minimum_operator_set():
    assert MINIMUM_SET <= set(OPERATOR_NAMES)


@pytest.mark.parametrize(("spec", "name", "params"), [
    ("redact", "redact", {"fill": None}),                                      # bare name
    ({"redact": True}, "redact", {"fill": None}),                              # {name: true}
    ({"redact": {"with": "[redacted]"}}, "redact", {"fill": "[redacted]"}),    # `with` is the policy's key
    ({"mask": {"keep_last": 2}}, "mask", {"keep_first": 0, "keep_last": 2, "char": "*"}),  # defaults filled in
    ({"generalize_date": "month"}, "generalize_date", {"unit": "month"}),      # bare scalar shorthand
    ({"generalize_date": {"unit": "year"}}, "generalize_date", {"unit": "year"}),  # full mapping
    ({"truncate": 3}, "truncate", {"length": 3}),                              # numeric shorthand
    ({"fake": "name"}, "fake", {"provider": "name", "locale": "en_US"}),       # provider shorthand
    ({"email_domain": True}, "email_domain", {}),                              # aggregate dimension form
])
def test_spec_forms_parse_to_name_and_typed_params(spec, name, params):
    parsed_name, parsed = parse_operator_spec(spec)
    assert parsed_name == name
    assert parsed.model_dump() == params


@pytest.mark.parametrize(("spec", "message"), [
    ("redcat", r"unknown operator 'redcat' \(did you mean 'redact'\?\); valid operators: bucket, "),  # typo
    ({"nope": True}, r"unknown operator 'nope'.*valid operators: .*pseudonymize"),     # unknown mapping key
    ({"mask": {"keep_lats": 2}}, r"mask: unknown parameter 'keep_lats'; valid parameters: keep_first, "
                                 r"keep_last, char"),                                  # misspelt parameter
    ({"mask": {"keep_last": -1}}, r"mask: parameter 'keep_last': .*greater than or equal to 0"),  # range
    ({"mask": {"char": "**"}}, r"mask: parameter 'char': .*at most 1"),                # char is one character
    ({"mask": {"char": ""}}, r"mask: parameter 'char': .*at least 1"),                 # ... and not empty
    ({"generalize_ip": {"ipv4_prefix": 33}}, r"generalize_ip: parameter 'ipv4_prefix'.*less than or equal "
                                             r"to 32"),                                # prefix bounds
    ({"generalize_ip": {"ipv6_prefix": 129}}, r"parameter 'ipv6_prefix'.*128"),        # prefix bounds
    ({"generalize_date": "week"}, r"generalize_date: parameter 'unit': .*'day', 'month' or 'year'"),  # unit
    ({"bucket": 0}, r"bucket: parameter 'size'.*greater than 0"),                      # size > 0
    ({"bucket": {}}, r"bucket: parameter 'size' is required"),                         # missing
    ({"truncate": -1}, r"truncate: parameter 'length'.*greater than or equal to 0"),   # length >= 0
    ({"shift_date": 0}, r"shift_date: parameter 'max_days'.*greater than or equal to 1"),  # max_days >= 1
    ({"fake": "nonsense_provider"}, r"fake: unknown provider 'nonsense_provider'; .*valid providers include "
                                    r"name, first_name"),                              # provider list
    ({"fake": {"provider": "name", "locale": "xx_XX"}}, r"fake: parameter 'locale': unknown locale"),
    ({"fake": "pyint"}, r"fake: provider 'pyint' does not produce text"),              # non-text provider
    ({"redact": False}, r"redact: parameters must be a mapping"),                      # false is not a form
    ({"keep": [1]}, r"keep: parameters must be a mapping or true"),                    # list is not a form
    ({"mask": {}, "redact": {}}, r"one-key mapping"),                                  # two operators at once
    (42, r"an operator is a name or a one-key mapping"),                               # not a spec at all
])
def test_bad_specs_raise_operator_error_naming_what_is_valid(spec, message):
    with pytest.raises(OperatorError, match=message):
        parse_operator_spec(spec)


@pytest.mark.parametrize("name", ["pseudonymize", "fake", "shift_date"])
@pytest.mark.parametrize(("key", "key_id", "message"), [
    (None, "k1", r"needs the pseudonymization key"),                           # no key resolved
    (b"short-key-0123456789", "k1", r"key is 20 bytes; at least 32"),          # too short
    (b"k" * 32, "bad id!", r"key_id must be 1-16 characters"),                 # id would break the token form
    (b"k" * 32, "x" * 17, r"key_id must be 1-16 characters"),                  # id too long for 64-char tokens
])
def test_keyed_operators_refuse_a_missing_or_weak_key_without_showing_it(name, key, key_id, message):
    spec = {"fake": "name"} if name == "fake" else {"shift_date": 5} if name == "shift_date" else name
    with pytest.raises(OperatorError, match=message) as info:
        build_operator(spec, OperatorContext(key=key, key_id=key_id))
    if key:
        assert key.decode() not in str(info.value)


def test_context_repr_never_shows_the_key():
    key = b"s3cr3t-" * 6
    assert "s3cr3t" not in repr(OperatorContext(key=key, key_id="k1"))


@pytest.mark.parametrize(("spec", "accepted", "refused"), [
    ("keep", {"text", "integer", "binary", "other"}, set()),                    # keep anything
    ("redact", {"text", "integer", "date", "boolean"}, set()),                  # NULL fits any column
    ({"redact": {"with": "[redacted]"}}, {"text"}, {"integer", "date"}),        # text fill needs text
    ({"redact": {"with": 0}}, {"integer", "float"}, {"text"}),                  # numeric fill
    ("pseudonymize", {"text", "integer"}, {"float", "date", "boolean"}),        # tokens or integer ids
    ({"mask": {"keep_last": 2}}, {"text"}, {"integer", "date"}),
    ({"fake": "name"}, {"text"}, {"integer"}),
    ("generalize_ip", {"text"}, {"integer", "binary"}),
    ({"generalize_date": "day"}, {"date", "datetime", "text"}, {"integer"}),
    ({"bucket": 10}, {"integer", "float"}, {"text", "date"}),
    ({"truncate": 3}, {"text"}, {"integer"}),
    ({"shift_date": 30}, {"date", "datetime"}, {"text", "integer"}),
    ("email_domain", {"text"}, {"integer"}),
])
def test_accepts_says_which_column_kinds_an_operator_handles(op, spec, accepted, refused):
    operator = op(spec)
    assert all(operator.accepts(k) for k in accepted)
    assert not any(operator.accepts(k) for k in refused)


def test_accepts_rejects_an_unknown_kind_listing_the_valid_ones(op):
    with pytest.raises(OperatorError, match=r"unknown column kind 'varchar'; valid kinds: text, integer"):
        op("keep").accepts("varchar")


@pytest.mark.parametrize(("spec", "idempotent", "needs_subject"), [
    ("keep", True, False), ("redact", True, False), ("pseudonymize", True, False),
    ({"mask": {"keep_last": 2}}, True, False), ({"fake": "name"}, False, False), ("generalize_ip", True, False),
    ({"generalize_date": "day"}, True, False), ({"bucket": 5}, True, False), ({"truncate": 2}, True, False),
    ({"shift_date": 9}, False, True), ("email_domain", True, False),
])
def test_operators_declare_idempotence_and_subject_needs(op, spec, idempotent, needs_subject):
    operator = op(spec)
    assert (operator.idempotent, operator.needs_subject) == (idempotent, needs_subject)
