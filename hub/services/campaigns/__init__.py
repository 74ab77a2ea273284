"""Campaigns: rules and audience, evaluation, caps and budgets, holdout, lifecycle, hooks."""
