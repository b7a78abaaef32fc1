"""Jinja2 templates of reports and LLM prompts (shipped as package data)."""
