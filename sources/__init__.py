"""Sources: one module per remote API or feed, all behind :class:`sources.base.Source`."""
