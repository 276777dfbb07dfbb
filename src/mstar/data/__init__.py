"""Cohort inputs: the one manifest reader, the one bag loader, reports, RNA/omics tables, the synthetic
cohort."""
