"""fhircast-hub: a FHIRcast hub that keeps clinical applications in one context."""

from __future__ import annotations


__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "create_app"]

from .app import create_app
from .config import Settings
