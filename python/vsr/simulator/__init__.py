"""An OpenAI-compatible backend simulator for tests and the local stack (``vsr sim``)."""

from vsr.simulator.app import SimulatorOptions, build_app, run_simulator

__all__ = ["SimulatorOptions", "build_app", "run_simulator"]
