"""Pretraining: stage 1 (multimodal contrastive + inter-cancer triplet) and stage 2 (self-taught, EMA)."""
