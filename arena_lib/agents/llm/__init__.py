"""LLM agents: provider clients and their config, prompt templates, response parsing, caching and cost."""
