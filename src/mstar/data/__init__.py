"""Cohort tables (the CSV schemas users already have), bag datasets, and the synthetic cohort."""
