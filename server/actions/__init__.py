"""Every write, one module per domain. Actions check rules, write in one transaction
(``server.db.atomic``), record the audit trail, and emit realtime events after commit."""
