"""joulesim simulator: energy and cycles of neural-network layers on MAC-array
accelerators, counted from the real operand values.

Public API:
- `load_config(path) -> HardwareConfig`
- `simulate_gemm(A, B, hw, ...) -> GemmResult`
"""
from simulator.config import HardwareConfig, load_config
from simulator.errors import JoulesimError
from simulator.gemm import GemmResult, simulate_gemm

__all__ = ["HardwareConfig", "JoulesimError", "GemmResult", "load_config", "simulate_gemm"]
