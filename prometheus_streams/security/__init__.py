"""TLS contexts and certificate enrollment."""
