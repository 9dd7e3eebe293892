"""The one place the version is written: the package metadata and the cache names read it."""

__version__ = "0.2.0"
