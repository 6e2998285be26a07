"""Dormitory card gates: reader frames to credentials (credential, reader, simulator), the local
allow-list (store, importer) and the decision taken on it without the network (engine)."""
