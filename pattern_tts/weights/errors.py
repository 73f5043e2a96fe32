"""The one exception type of the weights package."""

from __future__ import annotations


class WeightsError(Exception):
    """A weights directory could not be validated or prepared; the message says why and what to do."""
