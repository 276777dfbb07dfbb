"""Stage-1 pretraining: slide, report and RNA encoders aligned by gathered InfoNCE + inter-cancer triplet;
the checkpoint in upstream's layout; held-out retrieval; embeddings of any cohort (`mstar embed`)."""
