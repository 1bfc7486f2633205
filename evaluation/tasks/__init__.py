"""Evaluation tasks: each module exposes ``run(ctx) -> TaskResult``."""
