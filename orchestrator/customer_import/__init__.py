"""Importing customers from CSV or JSON Lines: validate every row, upsert in bulk.

A bad row never stops an import: good rows are written, each rejected row is reported
with its physical line number (the CSV header is line 1), the field and the reason.
Rows are validated in Python and written in chunks (one upsert per chunk for customers,
one insert for changed consent, one upsert and one insert for changed preferences), so
100,000 rows take seconds, not minutes.

Rules worth knowing:
- customers are matched by ``external_id``: new ones are inserted, known ones updated;
- a blank value (or a column that is absent) leaves the stored value as it is, so a file
  with a few columns updates only those; attributes are merged key by key;
- consent and preference columns apply only what differs from what the import said last time
  (read from the audit trails, whose rows carry their source): re-importing an unchanged file
  never undoes a STOP, an unsubscribe or a preference-centre change made since. A value the
  file changed is recorded with source ``import`` and applied;
- the same external_id twice in one file: the first valid row wins, later ones are rejected;
- ``attr.<key>`` columns override the same key in the ``attributes`` JSON column;
- ``contact.<channel>`` gives the address on any installed channel, checked and normalised by
  that channel's own rules (``contact.email`` is the ``email`` column, ``contact.sms`` and
  ``contact.phone`` the ``phone`` column); ``<channel>_opt_in`` records consent on any installed
  channel.

One module per step: ``read`` (CSV and JSON Lines rows, with the file's errors), ``columns``
(what each column means), ``validate`` (a row checked and normalised), ``write`` (a chunk
applied to the database, consent and preferences only where they differ from what the import
said last), ``run`` (the import: read, validate, write chunks in the background) and ``report``.
"""

from orchestrator.customer_import.read import detect_format
from orchestrator.customer_import.report import CustomerImportError, ImportReport, RejectedRow
from orchestrator.customer_import.run import import_customers

__all__ = ["CustomerImportError", "ImportReport", "RejectedRow", "detect_format", "import_customers"]
