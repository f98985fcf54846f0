"""The client portal (mounted at /portal), its JSON API under /portal/api."""
