"""fiagen: FIA-USA pseudo-fakes from real face videos, and detectors trained on them.

`fiagen.Detector` (a trained detector on any video, image or face crops; docs/predict.md) loads on first
use, so `import fiagen` stays light.
"""

from typing import Any

from fiagen.core.version import __version__

__all__ = ["Detector", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from fiagen.predict.detector import Detector

        return Detector
    raise AttributeError(f"module 'fiagen' has no attribute {name!r}")
