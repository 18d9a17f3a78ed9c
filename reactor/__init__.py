"""The reactor: one background thread running a selectors loop."""
