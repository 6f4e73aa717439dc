"""The scoped service proxy: an instance's mail, SMS and credits through services' own vendor keys,
always forced to that instance's own inbox, number or key (DESIGN.md §6, specs/runtime-callbacks.md)."""
