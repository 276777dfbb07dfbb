"""Small helpers shared by every stage (atomic files, progress, seeding)."""
