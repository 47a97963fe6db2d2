"""Source spans, re-exported from the bottom layer (`s3dsl.spans`)."""

from s3dsl.spans import Span

__all__ = ["Span"]
