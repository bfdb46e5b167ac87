"""SendGrid: email out (adapter), delivery events in (webhook), and its settings."""
