"""Email notifications: the outbox, templates and delivery over SMTP."""
