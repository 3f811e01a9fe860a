"""Delivery to one subscriber."""
