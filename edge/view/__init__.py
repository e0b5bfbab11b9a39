"""The live view: a read-only page served for commissioning and operators (the `view:` section of
the station file). edge.view.live, in edge-run, takes frames off the inspection thread without
ever making it wait; edge.view.worker, a process of its own at idle priority, draws them and runs
edge.view.server, which serves the page and pushes updates (SSE)."""

from .live import LiveView

__all__ = ["LiveView"]
