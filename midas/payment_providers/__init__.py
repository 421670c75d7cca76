"""Payment providers (Stripe through its SDK, PayPal IPN) and the payments process manager."""
