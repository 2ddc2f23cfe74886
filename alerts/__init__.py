"""Alerts: rules, spike detection, routing and delivery, digests."""
