"""appearance stage."""
