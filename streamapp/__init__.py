"""streamapp: business webhooks made durable in Kafka, processed by Faust, written to PostgreSQL."""

__version__ = "0.1.0"
