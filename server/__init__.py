"""Cabinet: practice management with secure real-time messaging."""
