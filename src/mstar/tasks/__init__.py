"""Downstream tasks: objectives, training loops and evaluation."""
