"""The ledger: the only writer of the ``message`` table.

Every decision becomes a row; its modules are imported directly (no re-exports here):

- ``tables``: the ``message`` table as SQLAlchemy Core sees it (bulk reads and writes);
- ``queue``: claiming due messages for dispatch, and counting them;
- ``changes``: what a provider result or a dispatch verdict does to a claimed row, and the
  bulk UPDATE that records it;
- ``retry``: when a message that hit a transient error is due again;
- ``reconcile``: rows whose send is in doubt, flagged and settled;
- ``delivery``: delivery events moving rows forward (sent -> delivered, bounced...);
- ``reservations``: new rows (reserved decisions, fallbacks, escalations);
- ``incidents`` and ``campaigns``: the records a notice or a campaign hangs its rows on;
- ``summaries``: where the rows of one campaign, incident update or run stand, and why.
"""
