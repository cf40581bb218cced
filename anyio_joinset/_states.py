"""The life of a set, in order: a set only ever moves forward through these."""

NEW = 0
OPEN = 1
SHUTTING = 2  # in shutdown() or a fail-fast drain: new spawns are aborted before they start
CLOSING = 3  # in __aexit__: no new spawns, tasks unwinding
CLOSED = 4  # left: len is 0 for good
