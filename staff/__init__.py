"""The staff web app (mounted at /staff) and the staff JSON API (mounted at /api)."""
