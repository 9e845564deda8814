"""Clients for external APIs."""
