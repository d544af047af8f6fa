"""fiagen: FIA-USA pseudo-fakes from real face videos, and detectors trained on them."""

__version__ = "0.1.0"
