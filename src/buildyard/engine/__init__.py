"""Orchestration: the scheduler loop, executors, process lifecycle, log masking and the run steps."""
