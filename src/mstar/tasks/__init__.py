"""Downstream tasks on the run harness: supervised slide-level tasks, multimodal survival, report generation,
external evaluation and heatmaps."""
