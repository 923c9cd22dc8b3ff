"""Migration scripts, one per revision, named ``YYYY_MM_DD_<rev id>.py``."""
