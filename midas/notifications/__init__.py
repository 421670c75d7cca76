"""Email notifications (issue 6): the outbox, templates and delivery over SMTP."""
