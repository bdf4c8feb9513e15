"""Shared plumbing: flags, tables, keys, stored files, provenance, data, context, reports."""
