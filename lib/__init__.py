"""modeld: deploy and supervise model servers. All real code lives in this package."""

__version__ = "0.1.0"
