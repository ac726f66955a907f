"""The receiver: consume scrapes from JetStream, push them to the Pushgateway."""
