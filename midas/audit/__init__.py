"""Auditors' tools over the event log: queries, timelines, time travel, checkpoints,
export and import. Read only, except the import into an empty log."""
