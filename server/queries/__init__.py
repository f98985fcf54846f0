"""Read-side queries shared by the staff and portal apps (always scoped to the caller)."""
