"""dethrone: champion/challenger A/B testing with drift detection for tabular models."""

__version__ = "0.1.0"
