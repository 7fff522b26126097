"""The estimator: cycles of the generated accelerator (exact), and (as it lands) SRAM, energy,
area and power."""

from doping.estimate.cycles import Schedule, schedule

__all__ = ["Schedule", "schedule"]
