r"""Patterns of identifiers that must never survive anonymization: email addresses, phone numbers, full IPs.

Each pattern is written in the regex subset that Python's `re` (SQLite's REGEXP, see
expectations.validate) and PostgreSQL's ARE (`~`) read the same way: no `\b`, `\d` or look-arounds.
Phone numbers and IPv6 addresses are matched as whole values, because digit runs and colon-separated
hex occur by chance inside tokens and timestamps; email and IPv4 are matched anywhere in the value.
"""

from __future__ import annotations

# One local-part character before the @ finds exactly the values `[...]+@` would (a match anywhere needs
# only the run's last character), without retrying a whole run at every offset: 0.6 us a value instead of
# 2.4 us in Python's re (SQLite's REGEXP), where a 45-character token has no @ to stop at.
EMAIL = r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# Seven or more digits, at most two separators between digits, an optional extension: "+1-257-517-4551x679",
# "(536)481-2870", "001-307-383-3753".
PHONE = r"^[+(]?[0-9](?:[ ()./-]{0,2}[0-9]){6,}(?:[ ]?(?:x|ext\.?)[ ]?[0-9]{1,6})?$"
# A dotted quad `(?:[0-9]{1,3}\.){3}[0-9]{1,3}` occurs in a value exactly when this does (as with EMAIL, a
# match anywhere needs only the first group's last digit and the last group's first): 0.3 us a value
# instead of 1.0 us in Python's re, which would retry the whole quad at every digit of a token.
IPV4 = r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]"
IPV6 = r"^[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}$"
FULL_IP = rf"{IPV4}|{IPV6}"

IDENTIFIER_PATTERNS: dict[str, str] = {"no_email": EMAIL, "no_phone": PHONE, "no_ip": FULL_IP}

# An aggregate's dimensions hold plain values of any shape: dates and ZIP+4 codes as text are digit runs that
# PHONE matches, versions ("1.2.3.4") and times ("12:30:00") what IPV4 anywhere and IPV6 match. There an
# address counts only as the whole value: a dotted quad, eight hex groups, or hex groups around "::".
WHOLE_IP = (r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$|^(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}$"
            r"|^[0-9A-Fa-f:]*::[0-9A-Fa-f:]*$")
AGGREGATE_PATTERNS: dict[str, str] = {"no_email": EMAIL, "no_ip": WHOLE_IP}
