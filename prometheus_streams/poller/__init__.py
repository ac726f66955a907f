"""The poller: scrape targets, publish every scrape to JetStream."""

# Every module of the role logs under the name the role always had: operators
# filter on it, and a split into modules must not change what they see.
LOGGER_NAME = "prometheus_streams.poller.app"
