"""Thin Celery tasks over :mod:`worker.pipeline`."""
