"""The version of sid4ds (read by ``pyproject.toml`` and ``sid4ds.__version__``)."""

__version__ = "0.2.0"
