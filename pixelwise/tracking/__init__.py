"""Multi-object tracking: motion models and association (FS-Track in DESIGN.md)."""
