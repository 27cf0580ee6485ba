"""Great Expectations 1.x suites that prove a run did what its policy promised, evaluated inside the store.

The engine derives check specs from the policy (`expectations.checks`); `expectations.validate.run`
turns them into suites and returns only names, verdicts and counts. Importing this package does not
import Great Expectations (a second or more of start-up): only `expectations.gx` does, for `validate` and `suites`.
"""

import os

# Before great_expectations is first imported anywhere in the process: no usage statistics.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from expectations.checks import AggregateRules, ColumnRule, ColumnRules, NoRows, Outcome  # noqa: E402
from expectations.patterns import AGGREGATE_PATTERNS, IDENTIFIER_PATTERNS  # noqa: E402

__all__ = ["AGGREGATE_PATTERNS", "IDENTIFIER_PATTERNS", "AggregateRules", "ColumnRule", "ColumnRules", "NoRows",
           "Outcome"]
