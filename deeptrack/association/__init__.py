"""association stage."""
