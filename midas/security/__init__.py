"""Secrets handling for accounts: passwords, sessions, Google ID tokens."""
