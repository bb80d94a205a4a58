"""winnow: select instruction-tuning data for large language models."""

__version__ = "0.1.0"
