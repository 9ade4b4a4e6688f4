"""Sources: where rows are read from, once per table per sync."""
