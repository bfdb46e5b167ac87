"""Twilio: SMS out (adapter), status callbacks and replies in (webhook), its error codes and settings."""
