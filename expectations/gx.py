"""The one place Lethe imports Great Expectations: without the statistics, charting and JSON-schema libraries.

Importing GX 1.x imports every expectation class, and one of them (KL divergence) imports `scipy.stats`
and `altair` at module level for its metric and its chart: about 0.9 s of GX's 2-2.5 s import, paid by
every run, every DAG task that verifies, and every no-op second run (issue #4's target); the JSON-schema
metric adds `jsonschema` (0.1 s). Lethe builds no such expectation. While GX is imported, those modules
are stand-ins (`_Deferred`) that import the real module on first use, so nothing changes for code that
does use them; afterwards the stand-ins leave `sys.modules`, so any later `import scipy.stats` anywhere
gets the real module.

A stand-in is installed only for a module not yet imported, and only while GX is imported:
`importlib.util.LazyLoader` cannot do this on Python 3.11, whose import system reads the lazy module's
`__spec__` when GX imports it, which loads it (benchmarks/README.md, fifth session).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import sys
import types
from collections.abc import Iterator

# Each imported at module level by one GX module only, and used only inside its functions:
# scipy.stats and altair by expectations/core/expect_column_kl_divergence_to_be_less_than.py (0.9 s),
# jsonschema by expectations/metrics/column_map_metrics/column_values_match_json_schema.py (0.1 s).
DEFERRED = ("scipy.stats", "altair", "jsonschema")


class _Deferred(types.ModuleType):
    """Stands in for module `name` until an attribute it lacks is read; then imports the real module
    and forwards every such read to it.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        # the import system checks `__spec__._initializing` of a module found in sys.modules
        self.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def __getattr__(self, attr: str) -> object:
        real = self.__dict__.get("_lethe_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = self.__dict__["_lethe_real"] = importlib.import_module(self.__name__)
        return getattr(real, attr)


@contextlib.contextmanager
def deferred(names: tuple[str, ...]) -> Iterator[None]:
    """Stand-ins for the modules of `names` not yet imported, for the duration of the block."""
    stand_ins = {name: _Deferred(name) for name in names if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


with deferred(DEFERRED):  # the package's __init__ has already turned GX's analytics off
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

__all__ = ["DataContextConfig", "InMemoryStoreBackendDefaults", "ProgressBarsConfig", "gx", "gxe"]
