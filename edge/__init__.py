"""The station runtime: frames in, OK/NG verdicts out. Never imports torch."""

__version__ = "0.1.0"
