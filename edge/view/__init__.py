"""The live view: a read-only page served by edge-run for commissioning and operators (the
`view:` section of the station file). edge.view.live takes frames off the inspection thread
without ever making it wait; edge.view.server serves the page and pushes updates (SSE)."""

from .live import LiveView

__all__ = ["LiveView"]
