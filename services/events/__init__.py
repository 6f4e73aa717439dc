"""Deploy events from the platforms: a hint to observe one instance now (DESIGN.md §13)."""
