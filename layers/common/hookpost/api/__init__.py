"""The HTTP API: one powertools resolver, a Router per resource."""
