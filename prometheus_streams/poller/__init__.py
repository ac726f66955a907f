"""The poller: scrape targets, publish every scrape to JetStream."""
