"""Precision: guards, answer agreement, consensus, verifier, calibration bound."""

__all__: list[str] = []
