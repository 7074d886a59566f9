"""The API simulator, reused from tests/ rather than copied: apisim (its
generated ids and default credentials) and simctl (Sim: start, stop and
control it; write_credentials).

Owns: putting tests/ on sys.path.
Uses: util (ROOT); tests/apisim.py, tests/simctl.py.
"""

import os
import sys

from .util import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests"))

import apisim  # noqa: E402  (generated_id, GEN_STATES: the simulator's own data)
import simctl  # noqa: E402  (Sim: start/stop/control the simulator)

__all__ = ["apisim", "simctl"]
