"""NodeRouter SDK for apps, importable as ``noderouter`` inside the runner."""

__all__ = ["__version__"]
__version__ = "0.1.0"
