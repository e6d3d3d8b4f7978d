"""Reading (and, for the demo, writing) the published release format."""
