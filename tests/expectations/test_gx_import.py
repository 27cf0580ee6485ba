"""Great Expectations is imported without scipy.stats, altair and jsonschema, which still work for whoever uses them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.stores import ROOT

PROBE = textwrap.dedent("""
    import json, sys
    import expectations.validate
    from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
    from great_expectations.expectations.metrics.column_map_metrics import column_values_match_json_schema as js

    seen = {"after_gx": sorted(n for n in ("scipy.stats", "altair", "jsonschema") if n in sys.modules),
            "kl_stats_deferred": type(kl.stats).__name__}
    # GX's own use of the stand-ins: the real functions answer
    seen["entropy"] = float(kl.stats.entropy([0.5, 0.5], [0.25, 0.75]))
    seen["chart"] = type(kl.alt.Chart()).__name__
    try:
        js.jsonschema.validate(instance={"a": 1}, schema={"type": "object", "required": ["b"]})
    except js.jsonschema.ValidationError:
        seen["schema_checked"] = True
    import scipy.stats
    import altair
    seen["real_modules"] = [type(scipy.stats).__name__, type(altair).__name__]
    seen["same_entropy"] = float(scipy.stats.entropy([0.5, 0.5], [0.25, 0.75]))
    print(json.dumps(seen))
""")


def probe(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gx_loads_without_scipy_stats_or_altair_and_both_still_answer_when_used():
    seen = probe(PROBE)
    assert seen["after_gx"] == []
    assert seen["kl_stats_deferred"] == "_Deferred"
    assert seen["entropy"] == seen["same_entropy"] > 0.14  # KL(0.5,0.5 || 0.25,0.75) = 0.1438...
    assert seen["chart"] == "Chart"
    assert seen["schema_checked"] is True
    # after GX's import nobody else is handed a stand-in
    assert seen["real_modules"] == ["module", "module"]


def test_a_module_imported_before_gx_is_left_as_it_is():
    seen = probe(textwrap.dedent("""
        import json, sys
        import scipy.stats
        real = sys.modules["scipy.stats"]
        import expectations.validate
        from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
        print(json.dumps({"same": kl.stats is real and sys.modules["scipy.stats"] is real}))
    """))
    assert seen == {"same": True}
