"""Layer-by-layer lens probes of causal language models, written as line-addressed artifacts."""

__version__ = "0.2.1"
