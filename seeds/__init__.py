"""Demo data loaded by `storewave hub seed` and `storewave demo`."""
