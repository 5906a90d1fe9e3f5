"""The backup side: taking backup sets, reading the catalog of recovery points from the store,
pruning by retention, copying repositories to and from the store, and seeding test data."""
