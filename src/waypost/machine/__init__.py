"""State machines: the second front-end, a driver on the same runtime as DAG flows."""

from .define import Final, Machine, State, To, to
from .driver import MachineDriver

__all__ = ["Final", "Machine", "MachineDriver", "State", "To", "to"]
