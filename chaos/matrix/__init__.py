"""The resiliency matrix: every dependency, degraded and down, against every feature."""

from .run import FEATURES, LEVELS, MatrixResult, load_expected, render_html, render_markdown, run

__all__ = ["FEATURES", "LEVELS", "MatrixResult", "load_expected", "render_html",
           "render_markdown", "run"]
