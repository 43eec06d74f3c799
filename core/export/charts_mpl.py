"""matplotlib as the charts load it: without its 3D toolkit. `matplotlib.projections` imports
`mpl_toolkits.mplot3d` on its own import (about 60 ms, near a tenth of a cold chart command) for a
projection no chart here draws. Marking the toolkit unimportable for that one import makes
matplotlib skip it (it catches the ImportError and warns, which is silenced); the mark is removed
after, so code that later imports the toolkit itself still gets it.

The chart module takes its matplotlib names from here so that this runs first.
"""

from __future__ import annotations

import sys
import warnings


def _import_without_3d() -> None:
    if "matplotlib.projections" in sys.modules or "mpl_toolkits.mplot3d" in sys.modules:
        return
    sys.modules["mpl_toolkits.mplot3d"] = None  # type: ignore[assignment]  # makes its import raise ImportError
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unable to import Axes3D")
            import matplotlib.figure  # noqa: F401
    finally:
        del sys.modules["mpl_toolkits.mplot3d"]


_import_without_3d()

from matplotlib import rc_context  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Patch  # noqa: E402
from matplotlib.transforms import ScaledTranslation, blended_transform_factory  # noqa: E402

__all__ = ["FancyBboxPatch", "Figure", "FontProperties", "Line2D", "Patch", "PolyCollection", "ScaledTranslation",
           "blended_transform_factory", "rc_context"]
