"""The package's version: imported by the report and the cache without the package."""

__version__ = "0.1.0"
