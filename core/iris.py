"""The iris domain: the four measurements, the label column, the three species and what a plausible measurement is.

Shared by everything that reads or serves flowers (the CSV scan, the trainer, the model store's checks, the predictor's
contract and page).
"""

from __future__ import annotations

import math

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"
CLASSES = ("setosa", "versicolor", "virginica")
MAX_CM = 100.0
"""Upper bound of a plausible measurement in cm (a flower is not a metre wide)."""

EXAMPLES: dict[str, tuple[float, float, float, float]] = {
    "setosa": (5.1, 3.5, 1.4, 0.2),
    "versicolor": (5.9, 2.8, 4.3, 1.3),
    "virginica": (6.7, 3.1, 5.8, 2.2),
}
"""Typical flowers of each species: warm-up checks and the web form's examples."""


def check_measurement(value: float) -> str | None:
    """Why a measurement in cm is not acceptable, or None if it is."""
    if not math.isfinite(value):
        return "not a finite number"
    if value < 0:
        return "negative measurement"
    if value > MAX_CM:
        return f"larger than {MAX_CM:g} cm"
    return None
