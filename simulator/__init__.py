"""joulesim simulator: energy and cycles of neural-network layers on MAC-array
accelerators, counted from the real operand values.

Public API:
- `load_config(path) -> HardwareConfig`
- `simulate_gemm(A, B, hw, ...) -> GemmResult`
- `simulate(model, inputs, hw, ...) -> Report` (whole network)
- `compare(model, configs, ...) -> Comparison`, `sweep(model, base, grid, ...) -> SweepResult`
"""
from simulator.config import HardwareConfig, load_config
from simulator.errors import JoulesimError
from simulator.gemm import GemmResult, simulate_gemm

# whole-network names import torch and pandas: loaded on first use, so that
# `joulesim gemm` and `import simulator` stay quick
_LAZY = {"Report": "simulator.network", "simulate": "simulator.network",
         "Comparison": "simulator.comparison", "compare": "simulator.comparison",
         "SweepResult": "simulator.exploration", "sweep": "simulator.exploration"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")

__all__ = ["HardwareConfig", "JoulesimError", "GemmResult", "Report", "Comparison", "SweepResult",
           "load_config", "simulate_gemm", "simulate", "compare", "sweep"]
