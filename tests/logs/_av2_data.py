"""Where the real Argoverse 2 fixture logs live (the 'shared' folder beside the repo root) and their ids."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "av2").resolve()

requires_av2 = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"AV2 fixture data not found at {DATA} (the 'shared' folder beside the repo root)"
)

LOG_A = "7fab2350-7eaf-3b7e-a39d-6937a4c1bede"
LOG_B = "adcf7d18-0510-35b0-a2fa-b4cea13a6d76"
LOG_NO_POSES = "b87683ae-14c5-321f-8af3-623e7bafc3a7"
FORECAST = "forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151"
POSES = "city_SE3_egovehicle.feather"
ANNOTATIONS = "annotations.feather"
