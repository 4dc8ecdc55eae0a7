"""The base layer of prep: what every stage shares. Imports nothing of prep above it (datasets, stages)."""
