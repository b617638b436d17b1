"""The Salesforce simulator: posts customer records the way today's simulator does."""
