"""The Review page and its views: graph, per-layer table, plots and layer sensitivity."""

from app.review.page import ReviewPage

__all__ = ["ReviewPage"]
