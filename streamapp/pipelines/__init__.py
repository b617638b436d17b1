"""Pipelines: each module declares its topics, tables, agents and views in one place."""
