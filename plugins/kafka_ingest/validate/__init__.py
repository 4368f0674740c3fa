"""Which rows pass a topic's rules: the GX validator, its one GX adapter, and the day's duplicate rule."""
