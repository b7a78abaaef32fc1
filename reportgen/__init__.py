"""Turn probe artifacts into cited, validated markdown evaluations, and audit citations in any report."""

__version__ = "0.2.0"
